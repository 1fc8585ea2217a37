/**
 * An example started on a port that is taken (`npm start -- --port <busy>`) says so in one line
 * on stderr and exits non-zero, with no stack trace (issue 23, item 6).
 */

import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import test from 'ava'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

/** Run `examples/<name>.ts --port <port>`; its exit code and stderr, killed after 30 s. */
async function run (name: string, port: number): Promise<{ code: number | null, stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', `examples/${name}.ts`, '--port', String(port)], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000)
  const [code] = await once(child, 'exit') as [number | null]
  clearTimeout(timer)
  return { code, stderr }
}

for (const name of ['echo-server', 'uppercase', 'metrics', 'chat-server']) {
  test(`examples/${name}.ts on a busy port: one line, exit code 1`, async (t) => {
    t.timeout(60_000)
    const busy = createServer()
    busy.listen(0, '127.0.0.1')
    await once(busy, 'listening')
    t.teardown(() => busy.close())
    const { port } = busy.address() as AddressInfo
    const { code, stderr } = await run(name, port)
    t.is(code, 1)
    const lines = stderr.trimEnd().split('\n')
    t.is(lines.length, 1, stderr)
    t.regex(lines[0], new RegExp(`^${name}: cannot listen on 127\\.0\\.0\\.1:${port}: .*EADDRINUSE`))
  })
}
