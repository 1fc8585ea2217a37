/**
 * An it-pipe handler: every text message comes back in capitals, binary ones unchanged.
 *
 *   npx tsx examples/uppercase.ts --port 8080
 */
import map from 'it-map'
import { pipe } from 'it-pipe'
import { isText, WebSocketServer, type Connection, type OutgoingMessage } from '../src/index.js'
import { isMain, serve } from './run.js'

const decoder = new TextDecoder()

function shout (message: Uint8Array): OutgoingMessage {
  return isText(message) ? decoder.decode(message).toUpperCase() : message
}

/** The connection is a duplex: its source in, a transform, its sink out. */
export function uppercase (conn: Connection): Promise<void> {
  return pipe(conn, (source) => map(source, shout), conn)
}

export function createServer (): WebSocketServer {
  return new WebSocketServer()
    .register('uppercase', uppercase)
    .register('', uppercase)
}

if (isMain(import.meta.url)) await serve(createServer())
