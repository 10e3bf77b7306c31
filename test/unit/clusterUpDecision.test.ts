import { decideUp } from '../../src/cluster/upDecision';

const healthy = { recorded: true, etcdRunning: true, apiserverRunning: true, ready: true };

test('a folder that never held a control plane gets a fresh one', () => {
  expect(decideUp({ recorded: false, etcdRunning: false, apiserverRunning: false, ready: false })).toEqual({ action: 'start' });
});

test('a healthy control plane is reused', () => {
  expect(decideUp(healthy)).toEqual({ action: 'reuse' });
});

test.each([
  [{ ...healthy, etcdRunning: false, ready: false }, 'etcd is not running'],
  [{ ...healthy, apiserverRunning: false, ready: false }, 'kube-apiserver is not running'],
  [{ ...healthy, etcdRunning: false, apiserverRunning: false, ready: false }, 'etcd is not running, kube-apiserver is not running'],
  [{ ...healthy, ready: false }, 'kube-apiserver is not ready'],
])('a stale control plane is restarted, saying why (%o)', (observed, reason) => {
  expect(decideUp(observed)).toEqual({ action: 'restart', reason });
});
