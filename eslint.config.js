import js from '@eslint/js'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['dist/', 'coverage/', 'node_modules/', 'scratch/', 'docs/api/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      'no-empty': ['error', { allowEmptyCatch: true }]
    }
  },
  {
    // Issue 20's yardstick: a function a reader can hold in mind, a file they can describe in a
    // sentence. Comments and blank lines count: a function that needs that many is long too.
    files: ['src/**/*.ts'],
    rules: {
      'max-lines-per-function': ['error', { max: 80 }],
      'max-lines': ['error', { max: 700 }]
    }
  },
  {
    files: ['src/browser/**/*.ts'],
    rules: {
      // The browser build: nothing from Node (test/browser/bundle.test.ts also checks what it imports).
      'no-restricted-imports': ['error', { patterns: [{ group: ['node:*'], message: 'the browser build imports nothing from node:' }] }],
      'no-restricted-globals': ['error', 'process', 'Buffer', 'setImmediate']
    }
  },
  {
    files: ['src/protocol/**/*.ts', 'src/handshake.ts', 'src/http2/handshake.ts', 'src/extensions/deflate-negotiation.ts', 'src/errors.ts'],
    rules: {
      // The pure layers: nothing from Node, no timers (DESIGN.md, "Layers").
      'no-restricted-imports': ['error', { patterns: [{ group: ['node:*'], message: 'the pure layers import nothing from node:' }] }],
      'no-restricted-globals': ['error', 'setTimeout', 'setInterval', 'setImmediate', 'queueMicrotask', 'process', 'Buffer']
    }
  }
)
