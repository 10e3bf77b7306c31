// docs/metrics.md is the contract: every metric the controller and the agent export is documented
// there with its type, and every documented metric is exported by one of them. Read from the text
// their /metrics serves (TYPE lines), not from the code's own lists.
import { AgentMetrics } from '../../src/agent/metrics';
import { ControllerMetrics } from '../../src/controller/metrics';
import { documentedMetrics, type MetricType } from '../support/metricsContract';

/** name → type of every `# TYPE` line in an exposition. */
export const exposed = (text: string): Map<string, string> => new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));

const controller = async () => exposed(await new ControllerMetrics().scrape());
const agent = async () => exposed(await new AgentMetrics().registry.metrics());

test('every metric the controller exports is documented with its type', async () => {
  const doc = documentedMetrics();
  const wrong = [...(await controller())].filter(([name, type]) => doc.get(name) !== (type as MetricType)).map(([name, type]) => `${name} (${type}; documented: ${doc.get(name) ?? 'no'})`);
  expect(wrong).toEqual([]);
});

test('every metric the agent exports is documented with its type', async () => {
  const doc = documentedMetrics();
  const wrong = [...(await agent())].filter(([name, type]) => doc.get(name) !== (type as MetricType)).map(([name, type]) => `${name} (${type}; documented: ${doc.get(name) ?? 'no'})`);
  expect(wrong).toEqual([]);
});

test('every documented metric is exported by the controller or the agent, agent ones (vmove_agent_… but vmove_agent_up) by the agent', async () => {
  const c = await controller();
  const a = await agent();
  const missing = [...documentedMetrics().keys()].filter((name) => !(name.startsWith('vmove_agent_') && name !== 'vmove_agent_up' ? a : c).has(name));
  expect(missing).toEqual([]);
});
