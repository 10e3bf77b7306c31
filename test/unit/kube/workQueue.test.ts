import { WorkQueue } from '../../../src/kube/workQueue';

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

describe('WorkQueue', () => {
  test('nothing runs before start(); keys added meanwhile run once started', async () => {
    const runs: string[] = [];
    const q = new WorkQueue(async (key) => void runs.push(key), { name: 't', concurrency: 2 });
    q.add('a');
    q.add('b');
    await tick(20);
    expect(runs).toEqual([]);
    q.start();
    await tick(20);
    expect(runs.sort()).toEqual(['a', 'b']);
  });

  test('a key queued twice runs once; a key added while running runs again after', async () => {
    const runs: string[] = [];
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const q = new WorkQueue(
      async (key) => {
        runs.push(key);
        if (runs.length === 1) await gate;
      },
      { name: 't', concurrency: 4 },
    );
    q.start();
    q.add('a');
    q.add('a');
    await tick();
    q.add('a'); // while in flight
    q.add('a');
    expect(runs).toEqual(['a']);
    release();
    await tick(20);
    await q.idle();
    expect(runs).toEqual(['a', 'a']);
  });

  test('never runs one key on two workers at once', async () => {
    let concurrent = 0;
    let maxSeen = 0;
    const q = new WorkQueue(
      async () => {
        concurrent++;
        maxSeen = Math.max(maxSeen, concurrent);
        await tick(2);
        concurrent--;
      },
      { name: 't', concurrency: 8 },
    );
    q.start();
    for (let i = 0; i < 50; i++) {
      q.add('same');
      await tick(1);
    }
    await tick(20);
    await q.idle();
    expect(maxSeen).toBe(1);
  });

  test('failures back off exponentially per key; success forgets them', async () => {
    const times: number[] = [];
    const q = new WorkQueue(
      async () => {
        times.push(Date.now());
        if (times.length < 4) throw new Error('boom');
      },
      { name: 't', concurrency: 1, baseDelayMs: 20 },
    );
    q.start();
    q.add('k');
    for (let waited = 0; times.length < 4 && waited < 5_000; waited += 10) await tick(10);
    expect(times).toHaveLength(4);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    expect(gaps[0]).toBeGreaterThanOrEqual(15);
    expect(gaps[1]).toBeGreaterThanOrEqual(35);
    expect(gaps[2]).toBeGreaterThanOrEqual(75);
    q.stop();
  });

  test('requeueAfterMs looks again later; the earliest pending delay wins', async () => {
    let n = 0;
    const q = new WorkQueue(async () => (++n === 1 ? { requeueAfterMs: 30 } : {}), { name: 't', concurrency: 1 });
    q.start();
    q.add('k');
    await tick(10);
    expect(n).toBe(1);
    q.addAfter('k', 1_000);
    await tick(60);
    expect(n).toBe(2);
    q.stop();
  });
});

describe('WorkQueue observer', () => {
  test('counts a key once while pending, its wait and work, and retries', async () => {
    const seen = { added: 0, waited: 0, worked: 0, retried: 0, depth: [] as number[] };
    let fail = true;
    const q = new WorkQueue(
      async () => {
        if (fail) {
          fail = false;
          throw new Error('boom');
        }
      },
      {
        name: 't',
        concurrency: 1,
        baseDelayMs: 5,
        observer: {
          added: () => void seen.added++,
          waited: () => void seen.waited++,
          worked: () => void seen.worked++,
          retried: () => void seen.retried++,
          depth: (n) => void seen.depth.push(n),
        },
      },
    );
    q.add('k');
    q.add('k');
    expect(seen.added).toBe(1);
    expect(seen.depth).toEqual([1]);
    q.start();
    for (let waited = 0; seen.worked < 2 && waited < 2_000; waited += 5) await tick(5);
    expect(seen).toEqual({ added: 2, waited: 2, worked: 2, retried: 1, depth: [1, 0, 1, 0] });
    q.stop();
  });
});
