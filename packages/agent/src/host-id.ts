/**
 * The stable identity of this host (ECS `host.id`): the systemd machine id, as Beats and Elastic Agent use,
 * so a VM keeps its identity across renames and reboots and matches the id other Elastic tools report.
 * A clone that kept its image's machine id must be given its own (`hostId` in the configuration).
 */
import { readFileSync } from 'node:fs';

const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];
const MACHINE_ID = /^[0-9a-f]{32}$/;

/** The configured id, else the machine id, else undefined (documents then carry `host.hostname` only). */
export function hostIdentity(configured: string | undefined, files: readonly string[] = MACHINE_ID_FILES): string | undefined {
  if (configured) return configured;
  for (const file of files) {
    try {
      const id = readFileSync(file, 'utf8').trim();
      if (MACHINE_ID.test(id)) return id;
    } catch {
      // Not there (containers, minimal images): try the next one.
    }
  }
  return undefined;
}
