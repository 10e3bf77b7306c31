// The runtime wires watches to one queue: a change becomes the keys its watch names (later, for a
// batching watch), and every reconcile is counted on the controller's registry.
import { Registry } from 'prom-client';
import { Controller, type Watch } from '../../../src/kube/controller';
import type { InformerHandlers } from '../../../src/kube/informer';
import { RuntimeMetrics } from '../../../src/kube/runtimeMetrics';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

class Source<T> {
  private readonly handlers: InformerHandlers<T>[] = [];
  on(h: InformerHandlers<T>): this {
    this.handlers.push(h);
    return this;
  }
  change(obj: T, old?: T): void {
    for (const h of this.handlers) h.onChange?.(obj, old);
  }
  remove(obj: T): void {
    for (const h of this.handlers) h.onDelete?.(obj);
  }
}

test('changes become keys; nothing runs before start; reconciles are counted by kind', async () => {
  const registry = new Registry();
  const metrics = new RuntimeMetrics(registry);
  const things = new Source<{ name: string }>();
  const hosts = new Source<string>();
  const runs: string[] = [];
  const own: Watch<{ name: string }> = { informer: things, toKeys: (t, change) => (change.deleted ? [] : [t.name]) };
  const onHost: Watch<string> = { informer: hosts, toKeys: (node) => [`on-${node}`], delayMs: 30 };
  const c = new Controller(
    {
      name: 'Thing',
      reconcile: async (key) => {
        runs.push(key);
        if (key === 'bad') throw new Error('boom');
      },
      watches: [own, onHost],
      concurrency: 2,
    },
    metrics,
  );
  things.change({ name: 'a' });
  things.remove({ name: 'gone' });
  await tick(10);
  expect(runs).toEqual([]);
  c.start();
  await tick(10);
  expect(runs).toEqual(['a']);
  hosts.change('n1');
  hosts.change('n1');
  await tick(10);
  expect(runs).toEqual(['a']);
  await tick(40);
  expect(runs).toEqual(['a', 'on-n1']);
  things.change({ name: 'bad' });
  await tick(10);
  c.stop();
  const text = await registry.metrics();
  expect(text).toContain('vmove_reconciles_total{kind="Thing",result="ok"} 2');
  expect(text).toContain('vmove_reconciles_total{kind="Thing",result="error"} 1');
  expect(text).toContain('vmove_reconcile_errors_total{kind="Thing"} 1');
  expect(text).toContain('vmove_workqueue_retries_total{name="Thing"} 1');
  expect(text).toContain('vmove_workqueue_adds_total{name="Thing"} 3');
  expect(text).toMatch(/vmove_reconcile_duration_seconds_count\{kind="Thing"\} 3/);
  expect(text).toMatch(/vmove_workqueue_work_duration_seconds_count\{name="Thing"\} 3/);
});
