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

/** A transform: text messages in capitals, binary ones unchanged. */
export function shout (source: AsyncIterable<Uint8Array>): AsyncGenerator<OutgoingMessage> {
  return map(source, (message) => isText(message) ? decoder.decode(message).toUpperCase() : message)
}

/** The handler: the connection is a duplex, so it-pipe runs its source through `shout` into its sink. */
export function uppercase (conn: Connection): Promise<void> {
  return pipe(conn, shout, conn)
}

export function createServer (): WebSocketServer {
  return new WebSocketServer()
    .register('uppercase', uppercase)
    .register('', uppercase)
}

if (isMain(import.meta.url)) await serve(createServer())
