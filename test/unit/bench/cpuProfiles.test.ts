// What --cpu-prof prints: a V8 profile's samples summed into self time per function and per package.
import { selfTimes, type CpuProfile } from '../../../src/bench/cpuProfiles';

const frame = (id: number, functionName: string, url: string, lineNumber = 0) => ({ id, callFrame: { functionName, url, lineNumber } });

const profile: CpuProfile = {
  nodes: [
    frame(1, '(root)', ''),
    frame(2, 'decideMove', 'file:///work/vmove/dist/controller/moverequest/decide.js', 41),
    frame(3, 'serialize', 'file:///work/vmove/node_modules/@kubernetes/client-node/dist/gen/models/ObjectSerializer.js', 9),
    frame(4, 'info', 'file:///work/vmove/node_modules/pino/lib/proto.js', 99),
    frame(5, '(garbage collector)', ''),
    frame(6, '(idle)', ''),
    frame(7, 'writeGeneric', 'node:internal/stream_base_commons', 150),
  ],
  // Sample i was taken at node samples[i], timeDeltas[i] µs after the one before.
  samples: [2, 2, 3, 4, 5, 6, 6, 7, 2],
  timeDeltas: [1000, 1000, 2000, 500, 1500, 9000, 9000, 1000, 1000],
};

test('self time per function: idle is not CPU, each function is named with its file and line', () => {
  const t = selfTimes(profile);
  expect(t.total).toBe(8);
  expect(t.functions[0]).toEqual({ name: 'decideMove decide.js:42', ms: 3, share: 3 / 8 });
  expect(t.functions.map((f) => f.name)).not.toContain('(idle)');
});

test('self time per package: vmove by folder, node_modules by package (scoped ones whole), the runtime, V8', () => {
  const byName = Object.fromEntries(selfTimes(profile).packages.map((p) => [p.name, p.ms]));
  expect(byName).toEqual({ 'vmove controller/': 3, '@kubernetes/client-node': 2, pino: 0.5, '(garbage collector)': 1.5, 'node (runtime)': 1 });
});
