import { KubeConfig } from '@kubernetes/client-node';
import { createMachine, initialTransition } from 'xstate';

test('client-node and xstate load under jest', () => {
  expect(typeof KubeConfig).toBe('function');
  const m = createMachine({ initial: 'a', states: { a: {} } });
  const [s] = initialTransition(m);
  expect(s.value).toBe('a');
});
