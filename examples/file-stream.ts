/**
 * Stream a file to each client that connects, as binary messages of up to 64 KiB, with
 * backpressure end to end: the file is read only as fast as the client reads. The server
 * closes (1000) after the last chunk. `download` is the client side: it saves the stream.
 *
 *   npx tsx examples/file-stream.ts --port 8080 --file ./big.iso
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { pipeline } from 'node:stream/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { connect, WebSocketServer, type CloseInfo, type ConnectOptions, type Handler, type WebSocketServerOptions } from '../src/index.js'
import { isMain, serve } from './run.js'

/** A handler that sends the file at `path`, 64 KiB per message; its end closes the connection. */
export function streamFile (path: string): Handler {
  return async ({ sink }) => {
    // A ReadStream is an async iterable of Buffers; the sink pulls a chunk only when the socket has room.
    await sink(createReadStream(path, { highWaterMark: 64 * 1024 }))
  }
}

export function createServer (path: string, options: WebSocketServerOptions = {}): WebSocketServer {
  return new WebSocketServer(options).register('', streamFile(path))
}

/** Save what the server at `url` streams into `dest`; resolves with how the connection closed. */
export async function download (url: string, dest: string, options: ConnectOptions = {}): Promise<CloseInfo> {
  const conn = await connect(url, options)
  await pipeline(conn.source, createWriteStream(dest))
  return conn.closed
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ strict: false, options: { file: { type: 'string', default: fileURLToPath(import.meta.url) } } })
  await serve(createServer(String(values.file)))
}
