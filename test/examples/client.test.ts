/** examples/client.ts: request() against the uppercase example, and the command line. */

import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import test from 'ava'
import { request } from '../../examples/client.js'
import { createServer } from '../../examples/uppercase.js'
import { listen } from './helpers.js'

test('request() sends each message and resolves with one reply per message', async (t) => {
  const server = createServer()
  const url = await listen(server)
  try {
    t.deepEqual(await request(url, ['hello', 'world'], { protocols: ['uppercase'] }), ['HELLO', 'WORLD'])
    t.deepEqual(await request(url, []), [])
  } finally {
    await server.close()
  }
})

test('request() rejects when the server closes before every reply came', async (t) => {
  const server = createServer()
  server.register('quiet', (conn) => { conn.close(4000, 'no') })
  const url = await listen(server)
  try {
    await t.throwsAsync(request(url, ['anyone?'], { protocols: ['quiet'] }), { message: /closed \(4000 no\) after 0 of 1/ })
  } finally {
    await server.close()
  }
})

test('runnable: `tsx examples/client.ts URL a b` prints the replies', async (t) => {
  const server = createServer()
  const url = await listen(server)
  try {
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', 'examples/client.ts', url, 'a b', 'c'], {
      cwd: fileURLToPath(new URL('../../', import.meta.url)),
      timeout: 30_000
    })
    t.is(stdout, 'A B\nC\n')
  } finally {
    await server.close()
  }
})
