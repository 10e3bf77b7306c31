// Jest's node environment, plus one fact for the test file's own teardown: whether a test or hook
// in it failed (globalThis.__vmoveTestFailed). End-to-end environments keep their folder then —
// the agents' logs and the guests' consoles — so a failure seen once can be read afterwards.
const { TestEnvironment } = require('jest-environment-node');

class FailureAwareEnvironment extends TestEnvironment {
  async handleTestEvent(event) {
    if (event.name === 'test_fn_failure' || event.name === 'hook_failure') this.global.__vmoveTestFailed = true;
  }
}

module.exports = FailureAwareEnvironment;
