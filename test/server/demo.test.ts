/**
 * The demo behind `npm start`: spawned as a child process (its own process group, so npm, tsx
 * and node all end with it), it prints the page's URL and the ws:// URL, serves the page, and
 * echoes for `echo` and no-subprotocol clients. (The page itself: test/examples/demo-page.test.ts.)
 */

import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { startDemo } from '../../examples/echo-server.js'
import { clientFrame, freePort, RawClient, sleep, stopChild, within, WsPeer } from './helpers.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))


test('npm start -- --port N prints http://127.0.0.1:N/ and ws://127.0.0.1:N/, serves the page there and echoes for echo and no-subprotocol clients', async (t) => {
  t.timeout(60_000)
  const port = await freePort()
  const child = spawn('npm', ['start', '--', '--port', String(port)], { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => stopChild(child))
  let stdout = ''
  let stderr = ''
  child.stdout!.setEncoding('utf8').on('data', (c: string) => { stdout += c })
  child.stderr!.setEncoding('utf8').on('data', (c: string) => { stderr += c })
  const url = `ws://127.0.0.1:${port}/`
  await within((async () => {
    while (!stdout.includes(url)) {
      if (child.exitCode !== null) throw new Error(`the demo exited: ${stderr}`)
      await sleep(50)
    }
  })(), 30_000, `the demo prints ${url}`)
  t.true(stdout.split('\n').includes(url), stdout)
  const pageUrl = `http://127.0.0.1:${port}/`
  t.true(stdout.split('\n').includes(pageUrl), stdout)
  const page = await fetch(pageUrl)
  t.is(page.status, 200)
  t.is(page.headers.get('content-type'), 'text/html; charset=utf-8')
  t.regex(await page.text(), /<title>wspipe demo<\/title>/)

  const withEcho = await WsPeer.open(url, 'echo')
  t.is(withEcho.ws.protocol, 'echo')
  await withEcho.send('héllo 😀')
  t.deepEqual(await withEcho.next(), { data: Buffer.from('héllo 😀'), isBinary: false })
  await withEcho.send(Buffer.from([0, 255]))
  t.deepEqual(await withEcho.next(), { data: Buffer.from([0, 255]), isBinary: true })
  t.is((await withEcho.close(1000)).code, 1000)

  const plain = await WsPeer.open(url)
  t.is(plain.ws.protocol, '')
  await plain.send('plain')
  t.is((await plain.next()).data.toString(), 'plain')

  // SIGTERM shuts the demo down cleanly: the open client sees 1001.
  const closed = plain.closed
  await stopChild(child)
  t.is((await within(closed, 10_000, 'close')).code, 1001)
})

test('the demo\'s defaults echo Autobahn 9.3.1\'s frames: 4 MiB of text in 64-byte fragments and the empty final one Autobahn adds (65,537 frames)', async (t) => {
  t.timeout(60_000)
  const demo = await startDemo(0)
  t.teardown(() => demo.close())
  const client = await RawClient.connect(Number(new URL(demo.wsUrl).port))
  t.teardown(() => client.destroy())
  // Autobahn's fragment loop: when the length is a multiple of the fragment size, the last full
  // fragment goes without FIN and an empty continuation with FIN ends the message.
  const size = 4 * 1024 * 1024
  const fragment = Buffer.alloc(64, '*')
  const frames = [clientFrame(1, fragment, { fin: false })]
  for (let i = 1; i < size / 64; i++) frames.push(clientFrame(0, fragment, { fin: false }))
  frames.push(clientFrame(0, Buffer.alloc(0), { fin: true }))
  t.is(frames.length, 65_537)
  client.send(Buffer.concat(frames))
  const echo = await client.nextFrame(30_000)
  t.is(echo?.opcode, 1, echo?.opcode === 8 ? `closed ${echo.payload.readUInt16BE(0)} ${echo.payload.subarray(2).toString()}` : undefined)
  t.true(echo?.fin)
  t.is(echo?.payload.length, size)
  t.true(echo?.payload.equals(Buffer.alloc(size, '*')))
})
