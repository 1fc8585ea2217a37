/**
 * Uploads of any size: each binary message a client sends is streamed into a file as it
 * arrives, so a 10 GiB upload holds no more memory than a 10 KiB one. The handler runs in
 * stream mode; `pipeline` writes the message's chunks to the file and reads the next chunk only
 * when the disk has taken the last, so a slow disk slows the client (TCP backpressure). The
 * reply is a JSON line `{ "file", "bytes" }`. `upload` is the client side: it sends a file as
 * one message, read and sent chunk by chunk.
 *
 *   npx tsx examples/upload.ts --port 8080 --dir ./uploads
 */
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { pipeline } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { connect, WebSocketServer, type StreamHandler, type WebSocketServerOptions } from '../src/index.js'
import { isMain, serve } from './run.js'

/** A stream-mode handler that saves each binary message into a new file under `dir`. */
export function saveUploads (dir: string): StreamHandler {
  let count = 0
  return async ({ source, send }) => {
    for await (const message of source) {
      if (message.type !== 'binary') {
        // Asking for the next message drops the rest of this one, unread.
        await send(JSON.stringify({ error: 'send a file as a binary message' }))
        continue
      }
      const file = join(dir, `upload-${process.pid}-${++count}`)
      try {
        await pipeline(message.chunks, createWriteStream(file))
      } catch (err) {
        // The connection failed part-way (or the disk did): no half file is left behind.
        await rm(file, { force: true })
        throw err
      }
      await send(JSON.stringify({ file, bytes: message.received }))
    }
  }
}

/** Uploads of any size: no message limit in stream mode, memory bounded by the water marks. */
export async function createServer (dir: string, options: WebSocketServerOptions = {}): Promise<WebSocketServer> {
  await mkdir(dir, { recursive: true })
  return new WebSocketServer(options).register('upload', saveUploads(dir), { messages: 'stream', maxMessageSize: Infinity })
}

/** Send the file at `path` to the upload server at `url` as one message; resolves with its reply. */
export async function upload (url: string, path: string): Promise<{ file: string, bytes: number }> {
  const conn = await connect(url, { protocols: 'upload' })
  try {
    // A streamed message: the file is read only as fast as the socket takes it.
    await conn.send({ type: 'binary', chunks: createReadStream(path) })
    const { value: reply } = await conn.source.next()
    if (reply === undefined) throw new Error('the server closed without a reply')
    return JSON.parse(new TextDecoder().decode(reply)) as { file: string, bytes: number }
  } finally {
    conn.close()
  }
}

if (isMain(import.meta.url)) {
  const { values } = parseArgs({ strict: false, options: { dir: { type: 'string', default: './uploads' } } })
  await serve(await createServer(String(values.dir)))
}
