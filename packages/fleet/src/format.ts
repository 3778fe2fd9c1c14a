/** Human tables of gather-fleet (the `--json` output is the data itself). */
import type { HostRow, LatestResult } from './queries.js';

const MAX_CELL = 60;

function cell(value: unknown): string {
  const text = (typeof value === 'string' ? value : (JSON.stringify(value) ?? '')).replace(/\s+/g, ' ');
  return text.length > MAX_CELL ? `${text.slice(0, MAX_CELL - 1)}…` : text;
}

export function formatTable(header: string[], rows: unknown[][]): string {
  const cells = rows.map((r) => r.map(cell));
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ');
  return [line(header), ...cells.map(line)].join('\n') + '\n';
}

export function formatAbused(
  hosts: Array<{ host: string; hostname: string; since: string; detected: string[]; evidence: LatestResult[] }>,
): string {
  if (hosts.length === 0) return 'No host has an abuse detection now.\n';
  return formatTable(
    ['HOST', 'HOSTNAME', 'REPORTED', 'DETECTED', 'EVIDENCE'],
    hosts.map((h) => [h.host, h.hostname, h.since, h.detected.join(' '), h.evidence.map((e) => `${e.name}=${cell(e.value)}`).join(' ')]),
  );
}

export function formatHosts(hosts: HostRow[], none: string): string {
  if (hosts.length === 0) return `${none}\n`;
  return formatTable(
    ['HOST', 'HOSTNAME', 'LAST SEEN', 'OUTCOME', 'AGENT', 'BUNDLE'],
    hosts.map((h) => [h.id, h.hostname, h.last_seen ?? 'never', h.outcome ?? '', h.agent ?? '', h.bundle ?? '']),
  );
}

export function formatHost(found: { host: HostRow; checks: Record<string, LatestResult[]> }): string {
  const h = found.host;
  const runs = Object.entries(h.runs ?? {}).map(([c, r]) => `${c} ${r['@timestamp']} ${r.outcome}`);
  const head =
    `host.id     ${h.id}\nhostname    ${h.hostname}\nfirst seen  ${h.first_seen ?? ''}\nlast seen   ${h.last_seen ?? ''} (${h.outcome ?? ''})\n` +
    `agent       ${h.agent ?? ''}   bundle ${h.bundle ?? ''}\nlast runs   ${runs.join('; ')}\n`;
  const sections = Object.entries(found.checks).map(
    ([check, rows]) =>
      `\n${check}\n${formatTable(
        ['  NAME', 'VALUE', 'SINCE'],
        rows.map((r) => [`  ${r.name}`, r.value, r['@timestamp']]),
      )}`,
  );
  return head + (sections.length ? sections.join('') : '\n(no current results)\n');
}

export function formatSummary(s: {
  hosts: number;
  outcome: Record<string, number>;
  agent: Record<string, number>;
  bundle: Record<string, number>;
  analytics: Record<string, number>;
}): string {
  const part = (title: string, counts: Record<string, number>) =>
    `\n${formatTable(
      [title, 'HOSTS'],
      Object.entries(counts).map(([k, n]) => [k, String(n)]),
    )}`;
  return `${s.hosts} hosts\n${part('OUTCOME', s.outcome)}${part('AGENT', s.agent)}${part('BUNDLE', s.bundle)}${part('ANALYTICS (true)', s.analytics)}`;
}
