// the contract walk against a real `pvsettle demo` (tests/e2e/test_miniprogram.py starts it)
module.exports = { testEnvironment: 'jsdom', roots: ['<rootDir>/contract'], testMatch: ['**/*.test.js'], testTimeout: 240000 };
