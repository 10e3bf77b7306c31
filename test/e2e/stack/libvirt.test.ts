// The whole of vmove with the libvirt driver: a real API server, the real controller, one real
// agent per node, and behind each agent its own libvirtd (hack/libvirt-sandbox.sh, started and
// stopped by the fleet) running vmove's test guest under TCG. VMs and MoveRequests go in with
// `kubectl apply`; each test checks the result as the user sees it and as the guest saw it (its
// serial console on each host). The moves the qemu suite covers in full (test/e2e/stack/qemu.test.ts)
// here prove the libvirt driver through the same engine: live over shared storage, live with
// block migration, cold, and a target agent lost mid-migration. Tests run one after another.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { RealStack } from '../../support/e2eFleet';
import { coldMove, liveBlock, liveShared, targetAgentDies } from './moveScenarios';

jest.setTimeout(300_000);

const DRIVER = 'libvirt';
let stack: RealStack;
const started = Date.now();

beforeAll(async () => {
  stack = await RealStack.start(DRIVER);
}, 300_000);

afterAll(async () => {
  await stack?.stop();
  console.log(`e2e stack (${DRIVER}): ${((Date.now() - started) / 1000).toFixed(0)} s`);
}, 120_000);

test('each node runs its own libvirtd', () => {
  const daemons = [...stack.env.fleet.nodes.values()].map((n) => n.libvirt);
  expect(daemons.every((d) => d !== undefined && d.pid > 0)).toBe(true);
  expect(new Set(daemons.map((d) => d!.socket)).size).toBe(3);
});

test('live move over shared storage: the guest runs on at the target without restarting', () => liveShared(stack));

test('live move of a VM on local disks: block migration carries disk and memory', () => liveBlock(stack));

/** The QMP commands a node's libvirtd sent its QEMUs (the sandbox logs them), by command name. */
function qmpSent(node: string, command: string): string[] {
  const log = readFileSync(join(stack.env.fleet.nodes.get(node)!.libvirt!.dir, 'log', 'qemu-monitor.log'), 'utf8');
  return log.split('\n').filter((l) => l.includes('QEMU_MONITOR_SEND_MSG') && l.includes(`"execute":"${command}"`));
}

test('those moves were encrypted by default: libvirt set up TLS for the memory stream and the NBD disk stream', async () => {
  for (const name of ['web-live', 'db-live']) {
    const mr = await stack.env.move(name);
    expect(mr?.status?.history?.find((h) => h.phase === 'PreparingTarget')?.message).toContain('migration stream: TLS required');
  }
  // Both ends were given TLS credentials for the migration (VIR_MIGRATE_TLS with each daemon's certificate folder).
  for (const node of ['node-a', 'node-b']) {
    expect(qmpSent(node, 'migrate-set-parameters').some((l) => /"tls-creds":"[^"]+"/.test(l))).toBe(true);
  }
  // Block migration: the target's NBD server and the source's NBD client used them too.
  expect(qmpSent('node-b', 'nbd-server-start').some((l) => l.includes('tls-creds'))).toBe(true);
  expect(qmpSent('node-a', 'blockdev-add').some((l) => l.includes('"driver":"nbd"') && l.includes('tls-creds'))).toBe(true);
});

test('cold move: the VM stops, its local disk is copied, and it boots on the target with its data', () => coldMove(stack));

test('the target agent dies mid-migration: the move rolls back and the guest runs on at the source', () => targetAgentDies(stack));
