// Jest runs TypeScript through ts-jest as CommonJS; NODE_OPTIONS=--experimental-vm-modules
// (set by the npm scripts) lets it load @kubernetes/client-node, which is ESM-only.
// Quiet logs in tests unless asked for (VMOVE_LOG_LEVEL=debug npm test).
process.env.VMOVE_LOG_LEVEL ??= 'error';

const tsJest = ['ts-jest', { tsconfig: 'tsconfig.json', diagnostics: { warnOnly: false } }];
const common = {
  // Node's, and it tells a file's teardown whether a test failed (its folder is kept then).
  testEnvironment: '<rootDir>/test/support/failureAwareEnvironment.js',
  transform: { '^.+\\.ts$': tsJest },
  moduleFileExtensions: ['ts', 'js', 'json'],
};

module.exports = {
  projects: [
    { ...common, displayName: 'unit', testMatch: ['<rootDir>/test/unit/**/*.test.ts'] },
    { ...common, displayName: 'integration', testMatch: ['<rootDir>/test/integration/**/*.test.ts'] },
    { ...common, displayName: 'e2e', testMatch: ['<rootDir>/test/e2e/**/*.test.ts'] },
  ],
};
