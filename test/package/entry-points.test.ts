/**
 * What `wspipe` loads: the optional parts with entry points of their own (`wspipe/redis`,
 * `wspipe/cluster`) stay out of it, and Node's TLS and HTTP/2 code is loaded only once used.
 */

import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import test from 'ava'
import { build } from 'esbuild'
import { makeCertificate } from '../client/helpers.js'

const ROOT = fileURLToPath(new URL('../../', import.meta.url))

test('wspipe loads neither the Redis adapter nor the cluster helper, and neither node:cluster', async (t) => {
  const result = await build({ absWorkingDir: ROOT, entryPoints: ['src/index.ts'], bundle: true, write: false, metafile: true, platform: 'node', format: 'esm', packages: 'external', logLevel: 'silent' })
  const inputs = Object.keys(result.metafile.inputs)
  t.true(inputs.includes('src/server.ts'), inputs.join(', '))
  t.false(inputs.includes('src/topics/redis.ts'), inputs.join(', '))
  t.false(inputs.includes('src/cluster.ts'), inputs.join(', '))
  const imports = result.metafile.outputs[Object.keys(result.metafile.outputs)[0]].imports.map((i) => i.path)
  t.false(imports.includes('node:cluster'), imports.join(', '))
})

test('a ws:// server and client load neither node:tls, node:https nor node:http2; wss:// loads them when first used', async (t) => {
  // A process of its own: which of Node's modules are loaded is process-wide state.
  const script = `
    const { WebSocketServer, connect } = await import(${JSON.stringify(new URL('../../src/index.ts', import.meta.url).href)})
    const loaded = (name) => process.moduleLoadList.includes('NativeModule ' + name)
    const server = new WebSocketServer()
    server.register('', ({ source, sink }) => sink(source))
    const { port } = await server.listen({ port: 0, host: '127.0.0.1' })
    const conn = await connect('ws://127.0.0.1:' + port + '/')
    await conn.send('x')
    const echoed = await conn.source.next()
    await conn.close()
    await server.close()
    const before = { tls: loaded('tls'), https: loaded('https'), http2: loaded('http2'), echoed: new TextDecoder().decode(echoed.value) }
    const tlsServer = new WebSocketServer()
    await tlsServer.listen({ port: 0, host: '127.0.0.1', tls: { key: process.env.TEST_KEY, cert: process.env.TEST_CERT } })
    await tlsServer.close()
    console.log(JSON.stringify({ before, after: { tls: loaded('tls'), http2: loaded('http2') } }))
  `
  const { key, cert } = makeCertificate()
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--import=tsx', '--input-type=module', '-e', script], { cwd: ROOT, timeout: 60_000, env: { ...process.env, TEST_KEY: key, TEST_CERT: cert } }, (err, stdout, stderr) => {
      if (err !== null) reject(new Error(`${err.message}\n${stderr}`))
      else resolve(stdout)
    })
  })
  const { before, after } = JSON.parse(out.trim().split('\n').pop()!)
  t.deepEqual(before, { tls: false, https: false, http2: false, echoed: 'x' })
  t.deepEqual(after, { tls: true, http2: true })
})
