// `npm run docs`: the API reference in docs/api/ (generated, git-ignored), from the TSDoc comments
// of what the package exports. A warning, such as an undocumented export, fails the build.
import { readFileSync } from 'node:fs'
import { URL } from 'node:url'

// The `closeCode` and `message` of each PROTOCOL_ERRORS entry: PROTOCOL_ERRORS's own comment
// says what they are, so they need none each.
const protocolErrorFields = [...readFileSync(new URL('./src/protocol/errors.ts', import.meta.url), 'utf8')
  .matchAll(/^ {2}(WS_ERR_\w+): \{/gm)]
  .flatMap(([, code]) => ['closeCode', 'message'].map((field) => `wspipe/protocol.PROTOCOL_ERRORS.__type.${code}.__type.${field}`))


/** @type {Partial<import('typedoc').TypeDocOptions>} */
export default {
  name: 'wspipe',
  entryPoints: ['src/index.ts', 'src/protocol/index.ts', 'src/testing.ts', 'src/browser/index.ts', 'src/topics/redis.ts', 'src/cluster.ts'],
  tsconfig: 'tsconfig.build.json',
  out: 'docs/api',
  // The README is the API reference's landing page.
  readme: 'README.md',
  // Source links need a remote; a fresh clone (CI) has none worth linking to.
  disableSources: true,
  excludePrivate: true,
  excludeInternal: true,
  validation: { notExported: true, invalidLink: true, notDocumented: true },
  // TypeDoc's default list, and constructors: each says what it makes and what it throws.
  requiredToBeDocumented: ['Enum', 'EnumMember', 'Variable', 'Function', 'Class', 'Interface', 'Property', 'Method', 'Accessor', 'TypeAlias', 'Constructor'],
  treatWarningsAsErrors: true,
  intentionallyNotDocumented: protocolErrorFields,
  // CLOSE_CODES's value type: not exported (yet), its fields are documented with CLOSE_CODES.
  intentionallyNotExported: ['CloseCodeInfo']
}
