// The agent's request validator, field by field: a valid request of every kind passes, and each
// way of breaking one field is refused with a problem naming that field and what it must be.
import { OPERATION_KINDS, opIdProblem, pathNameProblem, requestName, validateOperationRequest, type Problem } from '../../../src/agent/requestValidation';
import { sampleRequests, sampleVm } from '../../support/operationSamples';

type Json = Record<string, unknown>;
const samples = sampleRequests() as unknown as Record<string, Json>;

/** A deep copy of `base` with the value at `path` (`a.b[0]["c"]`) replaced, or deleted when `value` is DELETE. */
const DELETE = Symbol('delete');
function edit(base: Json, path: string, value: unknown): Json {
  const copy = structuredClone(base);
  const keys = [...path.matchAll(/\.?([A-Za-z_$][\w$]*)|\[(\d+)\]|\["([^"]*)"\]/g)].map((m) => m[1] ?? m[2] ?? m[3]!);
  let at: Record<string, unknown> = copy;
  for (const k of keys.slice(0, -1)) at = at[k] as Record<string, unknown>;
  const last = keys[keys.length - 1]!;
  if (value === DELETE) delete at[last];
  else at[last] = value;
  return copy;
}

const problemsOf = (body: unknown): Problem[] => {
  const r = validateOperationRequest(body);
  return 'problems' in r ? r.problems : [];
};

test('a valid request of every kind passes as it is', () => {
  expect(Object.keys(samples).sort()).toEqual([...OPERATION_KINDS].sort());
  for (const [kind, body] of Object.entries(samples)) {
    expect([kind, problemsOf(body)]).toEqual([kind, []]);
  }
});

test('optional fields may be left out', () => {
  const bare = { ...sampleVm(), kernelArgs: undefined, annotations: undefined };
  expect(problemsOf({ kind: 'startVm', vm: JSON.parse(JSON.stringify(bare)) })).toEqual([]);
  expect(problemsOf({ kind: 'deleteVm', vm: bare, deleteLocalDisks: false })).toEqual([]);
  expect(problemsOf({ kind: 'prepareIncoming', vm: bare, blockMigration: false })).toEqual([]);
  expect(problemsOf({ kind: 'verify', vm: bare, windowMs: 1, expectRunning: false })).toEqual([]);
  expect(problemsOf(edit(samples.migrate!, 'to', { migrationUri: 'tcp://[fd00::2]' }))).toEqual([]);
});

test('endpoints as each driver answers them pass on to migrate', () => {
  const to = [
    // qemu, block migration over NBD, TLS (the certificate names node-b; the stream goes to its migration network)
    { migrationUri: 'tcp:10.20.0.22:49152', tls: true, tlsName: 'node-b', postCopy: false, multifdChannels: 0, nbd: { host: '10.20.0.22', port: 49153, exports: { data: 'data' } } },
    // qemu on IPv6
    { migrationUri: 'tcp:[fd00::2]:49152', multifdChannels: 4 },
    // sim
    { migrationUri: 'tcp:127.0.0.1:27001', nbd: { host: '127.0.0.1', port: 27002, exports: { data: 'default_web/data' } } },
    // libvirt (sandbox peer URI with its socket)
    {
      migrationUri: 'tcp://127.0.0.1',
      postCopy: false,
      multifdChannels: 0,
      libvirt: { peerUri: 'qemu+unix:///system?socket=/tmp/vmove-e2e-Ab1_x/node-b/run/libvirt/libvirt-sock', listenAddress: '127.0.0.1', disks: { root: '/tmp/vmove-e2e-Ab1_x/shared/default_web/root.qcow2' }, serialLog: '/tmp/vmove-e2e-Ab1_x/node-b/state/default_web.serial.log' },
    },
  ];
  for (const endpoint of to) expect(problemsOf({ ...samples.migrate, to: endpoint })).toEqual([]);
});

test('not an object, an unknown or missing kind: named as body and kind', () => {
  expect(problemsOf(null)).toEqual([{ field: 'body', message: 'must be a JSON object (got null)' }]);
  expect(problemsOf([1])).toEqual([{ field: 'body', message: 'must be a JSON object (got an array)' }]);
  expect(problemsOf('ensureVm')).toEqual([{ field: 'body', message: 'must be a JSON object (got "ensureVm")' }]);
  const [unknown] = problemsOf({ ...samples.startVm, kind: 'launchMissiles' });
  expect(unknown).toEqual({ field: 'kind', message: expect.stringMatching(/^must be one of "ensureVm", .*"verify" \(got "launchMissiles"\)$/) });
  expect(problemsOf({ vm: sampleVm() })[0]).toMatchObject({ field: 'kind', message: expect.stringMatching(/^required: one of "ensureVm", /) });
  // Inherited names are not kinds.
  expect(problemsOf({ ...samples.startVm, kind: 'constructor' })[0]!.field).toBe('kind');
});

// [kind, field path, new value (DELETE = leave it out), expected message]
const cases: [string, string, unknown, RegExp][] = [
  // the VM, in any kind
  ['startVm', 'vm', DELETE, /^required$/],
  ['startVm', 'vm', 'default_x', /^must be an object \(got "default_x"\)$/],
  ['startVm', 'vm.id', '../etc', /^must be letters, digits, "\.", "-", "_" \(1–253, no "\.\."\) \(got "\.\.\/etc"\)$/],
  ['startVm', 'vm.id', 'a/b', /^must be letters, digits/],
  ['startVm', 'vm.id', 'a..b', /^must be letters, digits/],
  ['startVm', 'vm.id', '', /^must be letters, digits/],
  ['startVm', 'vm.id', 'x'.repeat(254), /^must be letters, digits/],
  ['startVm', 'vm.id', 7, /^must be letters, digits.* \(got 7\)$/],
  ['startVm', 'vm.uid', DELETE, /^required$/],
  ['startVm', 'vm.uid', 'uid with spaces', /^must be letters, digits, "\.", "-", "_" \(1–128\)/],
  ['startVm', 'vm.image', '../../etc/passwd', /^must be an image name/],
  ['startVm', 'vm.image', '.hidden', /^must be an image name/],
  ['startVm', 'vm.cpu', 0, /^must be an integer 1–1024 \(got 0\)$/],
  ['startVm', 'vm.cpu', 1.5, /^must be an integer 1–1024 \(got 1\.5\)$/],
  ['startVm', 'vm.cpu', '2', /^must be an integer 1–1024 \(got "2"\)$/],
  ['startVm', 'vm.cpu', 4096, /^must be an integer 1–1024/],
  ['startVm', 'vm.memoryBytes', -1, /^must be an integer ≥ 1 \(got -1\)$/],
  ['startVm', 'vm.memoryBytes', 2 ** 60, /^must be an integer ≥ 1/],
  ['startVm', 'vm.disks', {}, /^must be an array \(got an object\)$/],
  ['startVm', 'vm.disks', Array.from({ length: 65 }, (_, i) => ({ name: `d${i}`, sizeBytes: 1, storage: 'Local' })), /^must be at most 64 items/],
  ['startVm', 'vm.disks[0]', 'root', /^must be an object \(got "root"\)$/],
  ['startVm', 'vm.disks[0].name', '../root', /^must be letters, digits/],
  ['startVm', 'vm.disks[0].name', 'root/../../x', /^must be letters, digits/],
  ['startVm', 'vm.disks[1].name', 'root', /^must be unique \(another disk is named "root"\)$/],
  ['startVm', 'vm.disks[0].sizeBytes', -5, /^must be an integer ≥ 0 \(got -5\)$/],
  ['startVm', 'vm.disks[0].storage', 'Tape', /^must be one of "Local", "SharedFile", "SharedBlock" \(got "Tape"\)$/],
  ['startVm', 'vm.disks[0].size', '1Gi', /^unknown field$/],
  ['startVm', 'vm.kernelArgs', 'quiet\ninit=/bin/sh', /^must be a kernel command line without control characters/],
  ['startVm', 'vm.kernelArgs', 42, /^must be a kernel command line/],
  ['startVm', 'vm.annotations', ['a'], /^must be an object \(got an array\)$/],
  ['startVm', 'vm.annotations["sim.vmove.dev/dirty-rate-mibps"]', 4, /^must be a string/],
  ['startVm', 'vm.machine', 12, /^must be the source's runtime layout string/],
  ['startVm', 'vm.nodeName', 'node-a', /^unknown field$/],
  // top-level fields of each kind
  ['startVm', 'extra', true, /^unknown field$/],
  ['stopVm', 'force', true, /^unknown field$/],
  ['ensureVm', 'disks', 'wipe', /^must be one of "keep", "fresh" \(got "wipe"\)$/],
  ['ensureVm', 'start', 'yes', /^must be true or false \(got "yes"\)$/],
  ['ensureVm', 'start', DELETE, /^required$/],
  ['deleteVm', 'deleteLocalDisks', 1, /^must be true or false \(got 1\)$/],
  ['deleteVm', 'deleteSharedDisks', null, /^must be true or false \(got null\)$/],
  ['prepareIncoming', 'blockMigration', DELETE, /^required$/],
  ['prepareIncoming', 'tuning.multifdChannels', 0, /^must be an integer 1–64 \(got 0\)$/],
  ['prepareIncoming', 'tuning.speed', 1, /^unknown field$/],
  ['migrate', 'to', DELETE, /^required$/],
  ['migrate', 'to.migrationUri', 'exec:rm -rf /', /^must be tcp:HOST:PORT or tcp:\/\/HOST\[:PORT\] \(got "exec:rm -rf \/"\)$/],
  ['migrate', 'to.migrationUri', 'unix:/run/qemu.sock', /^must be tcp:HOST:PORT/],
  ['migrate', 'to.migrationUri', 'tcp:127.0.0.1', /^must be tcp:HOST:PORT/],
  ['migrate', 'to.migrationUri', 'tcp:127.0.0.1:99999', /^must be tcp:HOST:PORT/],
  ['migrate', 'to.migrationUri', 'tcp:host;reboot:1', /^must be tcp:HOST:PORT/],
  ['migrate', 'to.nbd.host', 'a b', /^must be a host name or IP address/],
  ['migrate', 'to.nbd.port', 0, /^must be an integer 1–65535 \(got 0\)$/],
  ['migrate', 'to.nbd.exports', 'data', /^must be an object/],
  ['migrate', 'to.nbd.exports["data"]', '../../dev/sda', /^must be an NBD export name/],
  ['migrate', 'to.tls', 'on', /^must be true or false/],
  ['migrate', 'to.tlsName', 'Node_B', /^must be a node name \(DNS-1123 subdomain\)/],
  ['migrate', 'to.libvirt.peerUri', 'qemu+ext:///system?command=/bin/sh', /^must be a libvirt URI/],
  ['migrate', 'to.libvirt.listenAddress', '', /^must be a host name or IP address/],
  ['migrate', 'to.libvirt.disks["root"]', '/var/lib/../../etc/shadow', /^must be an absolute path without "\." or "\.\." segments/],
  ['migrate', 'to.libvirt.disks["root"]', 'relative/root.qcow2', /^must be an absolute path/],
  ['migrate', 'to.libvirt.serialLog', '/tmp/./x', /^must be an absolute path/],
  ['migrate', 'to.proxy', 'x', /^unknown field$/],
  ['migrate', 'tuning', DELETE, /^required$/],
  ['migrate', 'tuning.bandwidthMiBps', -1, /^must be a number ≥ 0 \(got -1\)$/],
  ['migrate', 'tuning.maxDowntimeMs', '300', /^must be a number ≥ 0 \(got "300"\)$/],
  ['migrate', 'tuning.autoConverge', DELETE, /^required$/],
  ['migrate', 'tuning.postCopy', 0, /^must be true or false/],
  ['copyDisks', 'from', DELETE, /^required$/],
  ['copyDisks', 'from.endpoint', 'file:///etc/passwd', /^must be the http\(s\) base URL of the source agent/],
  ['copyDisks', 'from.endpoint', 'http://user:pw@10.0.0.1:8080', /^must be the http\(s\) base URL/],
  ['copyDisks', 'from.endpoint', 'http://10.0.0.1:8080/v1/disks/../..', /^must be the http\(s\) base URL/],
  ['copyDisks', 'from.token', 'x', /^unknown field$/],
  ['hotplug', 'cpu', 0, /^must be an integer 1–1024/],
  ['hotplug', 'memoryBytes', 'lots', /^must be an integer ≥ 1/],
  ['verify', 'windowMs', 600_001, /^must be an integer 1–600000 \(got 600001\)$/],
  ['verify', 'windowMs', 0, /^must be an integer 1–600000/],
  ['verify', 'expectRunning', DELETE, /^required$/],
  ['verify', 'heartbeatAbove', -1, /^must be an integer ≥ 0/],
];

test.each(cases)('%s: %s = %p is refused, naming the field', (kind, field, value, message) => {
  const problems = problemsOf(edit(samples[kind]!, field, value));
  expect(problems).toContainEqual({ field, message: expect.stringMatching(message) });
  // Only that field is named.
  expect(problems.map((p) => p.field)).toEqual([field]);
});

test('a map key that is no safe name is named with the key', () => {
  const problems = problemsOf(edit(samples.migrate!, 'to.nbd.exports', { '../x': 'x' }));
  expect(problems).toEqual([{ field: 'to.nbd.exports["../x"]', message: 'key must be a disk name' }]);
});

test('every problem of a request is listed, not only the first', () => {
  const body = edit(edit(edit(samples.migrate!, 'vm.cpu', 0), 'tuning.postCopy', 'no'), 'to.nbd.port', -1);
  expect(problemsOf(body).map((p) => p.field)).toEqual(['vm.cpu', 'to.nbd.port', 'tuning.postCopy']);
});

test('names in URL paths and operation ids', () => {
  expect(opIdProblem('4f2a.1.prepare-incoming')).toBeUndefined();
  expect(opIdProblem('../x')).toEqual({ field: 'opId', message: 'must be letters, digits, ".", "-", "_" (1–253, no "..") (got "../x")' });
  expect(opIdProblem('a'.repeat(300))?.message).toMatch(/\(got "a{40}…"\)$/);
  expect(pathNameProblem('vmId', 'default_web')).toBeUndefined();
  expect(pathNameProblem('disk', '..')).toMatchObject({ field: 'disk' });
});

test('messages name the request by its kind', () => {
  expect(requestName(samples.migrate)).toBe('migrate request');
  expect(requestName({ kind: 'toString' })).toBe('operation request');
  expect(requestName(null)).toBe('operation request');
});
