// Measurements, not assertions on time: opt-in with VMOVE_MEASURE=1. Live-migrates a 256 MiB
// guest rewriting 64 MiB over a link capped at 100 MiB/s, plainly, with auto-converge, and
// switching to post-copy after 5 s, and prints what each took.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { HostConfig } from '../../../src/drivers/driver';
import type { MigrationTuning } from '../../../src/protocol/migration';
import { QemuDriver } from '../../../src/drivers/qemu';

const MiB = 1024 * 1024;
const measure = process.env.VMOVE_MEASURE === '1' ? test : test.skip;
jest.setTimeout(600_000);

measure('convergence on a 100 MiB/s link: plain, auto-converge, post-copy', async () => {
  const imageDir = execFileSync(path.resolve(__dirname, '../../../hack/build-guest.sh'), { encoding: 'utf8' }).trim();
  const root = mkdtempSync(path.join(os.tmpdir(), 'vmove-conv-'));
  const host = (name: string, ports: [number, number]): HostConfig => ({
    nodeName: name, stateDir: path.join(root, name, 'state'), localDir: path.join(root, name, 'local'), sharedDir: path.join(root, 'shared'),
    imagesDir: path.dirname(imageDir), migrationAddress: '127.0.0.1', migrationPorts: ports, capacity: { cpu: 2, memoryBytes: 4096 * MiB }, storage: ['SharedFile'],
  });
  const a = new QemuDriver(host('ca', [49500, 49509]), { shutdownTimeoutMs: 0 });
  const b = new QemuDriver(host('cb', [49510, 49519]), { shutdownTimeoutMs: 0 });
  const rows: string[] = [];
  const cases: { name: string; tuning: MigrationTuning; later?: MigrationTuning }[] = [
    { name: 'plain', tuning: { bandwidthMiBps: 100, maxDowntimeMs: 300, autoConverge: false, postCopy: false } },
    { name: 'auto-converge', tuning: { bandwidthMiBps: 100, maxDowntimeMs: 300, autoConverge: true, postCopy: false } },
    { name: 'post-copy after 5 s', tuning: { bandwidthMiBps: 100, maxDowntimeMs: 300, autoConverge: false, postCopy: false }, later: { bandwidthMiBps: 100, maxDowntimeMs: 300, autoConverge: false, postCopy: true } },
  ];
  try {
    for (const [i, c] of cases.entries()) {
      const vm = { id: `conv_${i}`, uid: `conv-${i}`, image: path.basename(imageDir), cpu: 1, memoryBytes: 256 * MiB, disks: [{ name: 'root', sizeBytes: 64 * MiB, storage: 'SharedFile' as const }], kernelArgs: 'vmove.dirty_mib=64' };
      await a.ensureDisks(vm, 'keep');
      await a.define(vm);
      await a.start(vm.id);
      await new Promise((r) => setTimeout(r, 8000));
      const to = await b.prepareIncoming(vm, { blockMigration: false, tuning: c.tuning });
      const t0 = Date.now();
      await a.startMigration(vm.id, to, c.tuning, { blockMigration: false });
      let row = `${c.name}: did not converge in 60 s`;
      while (Date.now() - t0 < 60_000) {
        if (c.later && Date.now() - t0 > 5000) {
          await a.tuneMigration(vm.id, c.later);
          c.later = undefined;
        }
        const s = await a.migrationStatus(vm.id);
        if (s.state === 'completed') {
          row = `${c.name}: ${(s.totalTimeMs! / 1000).toFixed(1)} s, downtime ${s.downtimeMs} ms, ${s.iteration} passes, ${(s.memoryTransferredBytes / MiB).toFixed(0)} MiB sent`;
          break;
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      rows.push(row);
      await a.abortMigration(vm.id).catch(() => undefined);
      await a.undefine(vm.id, { deleteLocalDisks: true, deleteSharedDisks: true });
      await b.undefine(vm.id, { deleteLocalDisks: true, deleteSharedDisks: true });
    }
  } finally {
    await a.close();
    await b.close();
    rmSync(root, { recursive: true, force: true });
  }
  console.log(rows.join('\n'));
  expect(rows).toHaveLength(3);
});
