// `npm run bench -- dataplane`: the same guest (vmove's test guest kit under TCG, rewriting part
// of its memory without pause) live-migrated between two hosts on this machine by vmove — the
// whole product, qemu driver, default policy with its convergence ladder — and by `virsh migrate
// --live` with libvirt's defaults between two libvirtd. Both in one run, one migration at a time,
// alternating, so both see the same machine. Prints a table and the ratios vmove/libvirt.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { guestKitImagesDir } from '../local/guestKit';
import { QUICK_SCENARIOS, report, SCENARIOS, type MigrationRun, type Scenario, type ScenarioResult } from './dataplaneScenarios';
import { VirshSide } from './dataplaneVirsh';
import { VmoveSide } from './dataplaneVmove';

/** libvirtd migration and NBD ports of the two reference hosts. */
const LIBVIRT_PORTS: [number, number] = [49_860, 49_899];

export async function benchDataplane(o: { quick: boolean }, log: (s: string) => void = console.log): Promise<void> {
  const scenarios: Scenario[] = o.quick ? QUICK_SCENARIOS : SCENARIOS;
  log('dataplane: vmove (controller + qemu agents, default policy) vs virsh migrate --live (libvirt defaults), same guest, TCG, one migration at a time');
  const imagesDir = guestKitImagesDir();
  // Short: libvirt's and QEMU's unix sockets live below it (at most 107 bytes).
  const root = mkdtempSync(path.join(tmpdir(), 'vmove-dp-'));
  let vmove: VmoveSide | undefined;
  let virsh: VirshSide | undefined;
  try {
    vmove = await VmoveSide.start(path.join(root, 'v'), imagesDir);
    virsh = await VirshSide.start(path.join(root, 'l'), imagesDir, LIBVIRT_PORTS);
    const results: ScenarioResult[] = [];
    for (const [i, s] of scenarios.entries()) {
      const runs: MigrationRun[] = [];
      for (const [j, variant] of s.vmove.entries()) {
        log(`- ${s.name}: ${variant.label} …`);
        runs.push(await vmove.migrate(s, variant, `dp-${i}-${j}`));
        log(`  ${summary(runs.at(-1)!)}`);
      }
      log(`- ${s.name}: virsh …`);
      const l = await virsh.migrate(s, `dp-${i}`);
      log(`  ${summary(l)}`);
      results.push({ scenario: s, vmove: runs, libvirt: l });
    }
    log('');
    log(report(results));
  } finally {
    await vmove?.stop();
    await virsh?.stop();
    rmSync(root, { recursive: true, force: true });
  }
}

const summary = (r: MigrationRun): string =>
  `${r.converged ? 'converged' : 'did not converge'} (${r.how}) in ${(r.migrationMs / 1000).toFixed(1)} s, ` +
  `downtime ${r.downtimeMs ?? '–'} ms, ${Math.round(r.bytesSent / 2 ** 20)} MiB sent, dirty rate up to ${Math.round(r.maxDirtyRateBytesPerSecond / 2 ** 20)} MiB/s`;
