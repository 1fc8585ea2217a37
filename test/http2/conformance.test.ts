/**
 * `npm run conformance -- --http2` works end to end: the runner starts the demo with `--tls` and
 * runs cases of each kind (framing, fragmentation, close handling, a limit, compression) as
 * streams of one HTTP/2 session, every one OK. (The whole suite: docs/conformance.md.)
 */

import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import { peerTest } from '../peers.js'

const test = peerTest('openssl')
const ROOT = fileURLToPath(new URL('../../', import.meta.url))

test('conformance --http2: a case of each kind, all OK, over one HTTP/2 session', async (t) => {
  t.timeout(120_000)
  const dir = await mkdtemp(join(tmpdir(), 'wspipe-conf-h2-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const report = join(dir, 'report.json')
  const { stdout } = await promisify(execFile)(process.execPath, ['--import=tsx', 'test/conformance/run.ts', '--http2', '--cases', '1.1.*,2.10,5.15,6.4.1,7.1.*,7.5.1,9.1.3,12.1.1,13.2.1', '--report', report], { cwd: ROOT, timeout: 100_000 })
  t.regex(stdout, /every case on a stream of one HTTP\/2 session/)
  t.regex(stdout, /\nPASS\n/)
  const json = JSON.parse(await readFile(report, 'utf8')) as { transport: string, totals: Record<string, number> }
  t.is(json.transport, 'HTTP/2 (RFC 8441), one session')
  t.is(json.totals.FAILED, 0)
  t.true(json.totals.OK >= 20, JSON.stringify(json.totals))
})
