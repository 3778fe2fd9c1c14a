// Stages the abuse scenarios of checks/scenarios/ on this machine (as root) and removes them again: throwaway
// home dirs, files (cron, systemd units, configs), fake tools on a PATH dir and processes that are copies of
// /usr/bin/perl under telling or misleading names, with sockets on 127.0.0.1 only. Every staged thing carries
// the run's unique prefix, so cleanup finds it even after a crash.
import { spawn, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** One staged process: a copy of perl doing `do` actions, shown as `argv0` (and `comm`, the kernel's name). */
export interface ProcessSpec {
  /** Where the copy of perl lives (`~` = the scenario's home, `@` = its unique name). Omit to run /usr/bin/perl. */
  exe?: string;
  /** The command line shown in /proc/PID/cmdline (perl's `$0`). */
  argv0: string;
  /** The kernel's process name (/proc/PID/comm), when it should differ from what `argv0` gives. */
  comm?: string;
  env?: Record<string, string>;
  /**
   * What it does, in order: `listen:PORT[:BACKLOG[:127.x.y.z]]`, `connect:PORT[:COUNT]` (established, needs a listener),
   * `synscan:PORT:COUNT` (half-open connections to a full-backlog listener of its own), `raw` (a raw TCP
   * socket, nothing sent), then `burn` (a busy loop) or sleep.
   */
  do?: string[];
  /** Delete the executable once the process runs. */
  deleteExe?: boolean;
  /** Run from a memfd copy of perl (exe `/memfd:... (deleted)`). */
  memfd?: boolean;
}

export interface Scenario {
  id: string;
  title: string;
  /** `abuse`: must be flagged with exactly the kinds in `expect`; `benign`: must flag nothing. */
  class: 'abuse' | 'benign';
  /** The kinds (`mining`, `hidden`, `ddos`, `scan`, `brute`, `games`, `signatures`) that must be flagged. */
  expect: string[];
  /** Substrings that must appear in the new evidence lines of the scenario (e.g. every seed signature). */
  evidence?: string[];
  /** Files to write: path (`~`, `@` as above) -> content. A path ending in `/` is a directory. */
  files?: Record<string, string>;
  /** Executables put on a PATH dir the agent is started with (the installed tools a VM would have). */
  tools?: string[];
  processes?: ProcessSpec[];
  /** Seconds to wait after everything is staged (e.g. for CPU time to build up). */
  settleSec?: number;
}

const PERL_PROLOGUE = `use strict; use warnings; use Socket; use IO::Socket::INET; use Fcntl;
my @keep; my $burn = 0; $SIG{TERM} = sub { exit 0 };
sub lst { my ($p, $b, $h) = @_; die "loopback only" unless ($h // '127.0.0.1') =~ /^127./;
  push @keep, IO::Socket::INET->new(LocalAddr => $h // '127.0.0.1', LocalPort => $p, Listen => $b // 64, ReuseAddr => 1) or die "listen $p: $!" }
sub con { my ($p, $n) = @_; for (1 .. ($n // 1)) { push @keep, IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $p) or die "connect $p: $!" } }
sub syn { my ($p, $n) = @_; lst($p, 0);
  for (1 .. $n) { socket(my $s, PF_INET, SOCK_STREAM, 0) or die; fcntl($s, F_SETFL, O_NONBLOCK); connect($s, sockaddr_in($p, inet_aton('127.0.0.1'))); push @keep, $s } }
sub raw { socket(my $s, PF_INET, SOCK_RAW, 6) or die "raw: $!"; push @keep, $s }
`;

const MEMFD_STAGER = `my $name = "x"; my $fd = syscall(319, $name, 0); die "memfd: $!" if $fd < 0;
open(my $in, "<:raw", "/usr/bin/perl") or die; open(my $out, ">&=", $fd) or die; binmode $out;
{ local $/; my $bytes = readline($in); print {$out} $bytes; } close $in;
exec { "/proc/self/fd/$fd" } $ENV{GATHER_SCENARIO_ARGV0}, "-" or die "exec: $!";`;

/** The perl program of a staged process (read from stdin: the command line shows only `argv0` and `-`). */
function perlProgram(spec: ProcessSpec): string {
  const lines = [PERL_PROLOGUE];
  for (const action of spec.do ?? []) {
    const [verb, a, b, host] = action.split(':');
    const num = (s: string | undefined) => (s === undefined ? 'undef' : String(Number.parseInt(s, 10)));
    if (verb === 'listen') lines.push(`lst(${num(a)}, ${num(b)}, ${host && /^127\.\d+\.\d+\.\d+$/.test(host) ? `'${host}'` : 'undef'});`);
    else if (verb === 'connect') lines.push(`con(${num(a)}, ${num(b)});`);
    else if (verb === 'synscan') lines.push(`syn(${num(a)}, ${num(b)});`);
    else if (verb === 'raw') lines.push('raw();');
    else if (verb === 'burn') lines.push('$burn = 1;');
    else throw new Error(`unknown action ${action}`);
  }
  // prctl(PR_SET_NAME) (x86_64 syscall 157): the kernel's name, as a renamed miner sets it. (No `$0 = ...`:
  // perl would overwrite the environment block with it.)
  lines.push('my $comm = $ENV{GATHER_SCENARIO_COMM} // ""; syscall(157, 15, $comm, 0, 0, 0) if length $comm;');
  lines.push('$| = 1; print "ready\\n";');
  lines.push('if ($burn) { my $x = 0; while (1) { $x++ } } else { sleep 1 while 1 }');
  return lines.join('\n');
}

export class Stage {
  readonly name: string;
  readonly home: string;
  readonly binDir: string;
  private readonly paths: string[] = [];
  private readonly children: ChildProcess[] = [];

  /** `index` (not the id) names the staged things: an id such as `ddos-...` would itself match the checks' patterns. */
  constructor(
    readonly prefix: string,
    readonly scenario: Scenario,
    index: number,
  ) {
    this.name = `${prefix}-${index}`;
    this.home = `/home/${this.name}`;
    this.binDir = `/tmp/${this.name}-bin`;
  }

  /** Pids of the staged processes. */
  pids(): number[] {
    return this.children.flatMap((child) => (child.pid ? [child.pid] : []));
  }

  resolve(path: string): string {
    const out = path.replace(/^~(?=\/|$)/, this.home).replaceAll('@', this.name);
    if (!out.includes(this.prefix)) throw new Error(`${path}: staged paths must contain ~ or @ (the unique prefix)`);
    return out;
  }

  private track(path: string): void {
    this.paths.push(path);
  }

  async up(): Promise<void> {
    mkdirSync(this.home, { recursive: true });
    this.track(this.home);
    for (const [rawPath, content] of Object.entries(this.scenario.files ?? {})) {
      const path = this.resolve(rawPath);
      if (!path.startsWith(this.home)) this.track(path.endsWith('/') ? path : path);
      if (path.endsWith('/')) mkdirSync(path, { recursive: true });
      else {
        mkdirSync(dirname(path), { recursive: true });
        if (!dirname(path).startsWith(this.home) && dirname(path).includes(this.prefix)) this.track(dirname(path));
        writeFileSync(path, content, { mode: 0o644 });
      }
    }
    if (this.scenario.tools?.length) {
      mkdirSync(this.binDir, { recursive: true });
      this.track(this.binDir);
      for (const tool of this.scenario.tools) writeFileSync(`${this.binDir}/${tool}`, '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    }
    for (const spec of this.scenario.processes ?? []) await this.startProcess(spec);
    if (this.scenario.settleSec) await sleep(this.scenario.settleSec * 1000);
  }

  private async startProcess(spec: ProcessSpec): Promise<void> {
    let exe = '/usr/bin/perl';
    if (spec.exe) {
      exe = this.resolve(spec.exe);
      mkdirSync(dirname(exe), { recursive: true });
      if (!dirname(exe).startsWith(this.home)) this.track(dirname(exe));
      copyFileSync('/usr/bin/perl', exe);
      chmodSync(exe, 0o755);
    }
    const program = perlProgram(spec);
    const argv0 = spec.argv0.replaceAll('@', this.name);
    const env = { PATH: '/usr/bin:/bin', GATHER_SCENARIO: this.name, GATHER_SCENARIO_COMM: spec.comm ?? '', ...(spec.env ?? {}) };
    const child = spec.memfd
      ? // a perl that copies perl into a memfd and execs it: the staged process runs from memory only
        spawn('/usr/bin/perl', ['-e', MEMFD_STAGER], {
          argv0: 'perl',
          detached: true,
          stdio: ['pipe', 'pipe', 'pipe'],
          env: { ...env, GATHER_SCENARIO_ARGV0: argv0 },
        })
      : spawn(exe, ['-'], { argv0, detached: true, stdio: ['pipe', 'pipe', 'pipe'], env });
    child.stdin!.end(program);
    this.children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    await new Promise<void>((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.name}: process ${argv0} not ready after 20 s: ${stderr}`)), 20_000);
      child.stdout!.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('ready')) {
          clearTimeout(timer);
          resolvePromise();
        }
      });
      child.on('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`${this.name}: process ${argv0} exited (${code}): ${stderr}`));
      });
    });
    if (spec.deleteExe && spec.exe) unlinkSync(exe);
  }

  /** Kills every staged process (its group) and removes every staged path. Safe to call twice. */
  async down(): Promise<void> {
    for (const child of this.children) {
      if (child.pid && child.exitCode === null && child.signalCode === null) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
    }
    this.children.length = 0;
    for (const path of this.paths.reverse()) rmSync(path, { recursive: true, force: true });
    this.paths.length = 0;
  }
}

/** Kills processes and removes paths left by an earlier, crashed run: anything named with `prefixBase`. */
/**
 * Removes what earlier runs left behind: only the leftovers of test processes that are gone
 * (`<prefixBase><pid>…`), so that runs of other worktrees on a shared machine keep their staging.
 */
export function sweepStale(prefixBase: string): void {
  const stale = new Set<string>();
  const owner = new RegExp(`^${prefixBase}(\\d+)`);
  const alive = (pid: string) => existsSync(`/proc/${pid}`);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const tag = /GATHER_SCENARIO=([^\0]*)/.exec(readFileSync(`/proc/${entry}/environ`, 'latin1'))?.[1];
      const pid = tag ? owner.exec(tag)?.[1] : undefined;
      if (pid && !alive(pid)) stale.add(tag!);
    } catch {
      // gone or not ours to read
    }
  }
  for (const tag of stale) sweep(tag);
  for (const dir of ['/home', '/tmp', '/var/tmp', '/dev/shm', '/etc/cron.d', '/etc/systemd/system', '/var/spool/cron/crontabs']) {
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir)) {
      const pid = owner.exec(entry)?.[1];
      if (pid && !alive(pid)) rmSync(`${dir}/${entry}`, { recursive: true, force: true });
    }
  }
}

export function sweep(prefixBase: string): void {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').includes(`GATHER_SCENARIO=${prefixBase}`))
        process.kill(Number(entry), 'SIGKILL');
    } catch {
      // gone or not ours to read
    }
  }
  for (const dir of ['/home', '/tmp', '/var/tmp', '/dev/shm', '/etc/cron.d', '/etc/systemd/system', '/var/spool/cron/crontabs']) {
    if (!existsSync(dir)) continue;
    for (const entry of readdirSync(dir)) if (entry.startsWith(prefixBase)) rmSync(`${dir}/${entry}`, { recursive: true, force: true });
  }
}

export function exeOf(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/exe`);
  } catch {
    return undefined;
  }
}
