// the page tests: miniprogram-simulate renders the pages in jsdom
module.exports = { testEnvironment: 'jsdom', roots: ['<rootDir>/test'], testMatch: ['**/*.test.js'] };
