import { CLUSTER_START_TIMEOUT_MS, startTestCluster, type TestCluster } from '../support/testCluster';

let cluster: TestCluster;
beforeAll(async () => {
  cluster = await startTestCluster();
}, CLUSTER_START_TIMEOUT_MS);
afterAll(() => cluster?.stop(), 60_000);

test('kubectl works with the admin kubeconfig', async () => {
  const r = await cluster.kubectl(['get', 'namespace', 'vmove-system', '-o', 'jsonpath={.metadata.name}']);
  expect(r).toMatchObject({ code: 0, stdout: 'vmove-system' });
});
