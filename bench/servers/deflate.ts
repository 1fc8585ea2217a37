// Echo servers with permessage-deflate on, for bench/deflate.ts: `--impl wspipe` (its defaults,
// or `--mode no-context` / `--mode shared`), `--impl ws` (perMessageDeflate: true, ws's
// defaults), `--impl wspipe-off` (no compression, for the baseline).
import { WebSocketServer as WsServer } from 'ws'
import { WebSocketServer, type PerMessageDeflateOptions } from '../../src/index.js'
import { announce } from './control.js'

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : undefined
}
const impl = arg('impl') ?? 'wspipe'
const mode = arg('mode') ?? 'default'

if (impl === 'ws') {
  const wss = new WsServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true })
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data as Buffer, { binary: isBinary }))
    ws.on('error', () => {})
  })
  wss.on('listening', () => {
    const addr = wss.address()
    if (addr === null || typeof addr === 'string') throw new Error('unexpected address')
    announce({ port: addr.port })
  })
} else {
  const deflate: PerMessageDeflateOptions | boolean = impl === 'wspipe-off'
    ? false
    : mode === 'shared' ? { sharedCompressor: true } : mode === 'no-context' ? { serverNoContextTakeover: true, clientNoContextTakeover: true } : true
  const server = new WebSocketServer({ perMessageDeflate: deflate })
  server.register('', ({ source, sink }) => sink(source))
  const addr = await server.listen({ port: 0, host: '127.0.0.1' })
  announce({ port: addr.port })
}
