/**
 * JSON messages in and out: `calculator` is a handler built from wspipe's `json.decode` and
 * `json.encode`, transforms for it-pipe. A message that is not JSON closes the connection
 * with 1007 (invalid payload data).
 *
 *   npx tsx examples/json.ts --port 8080
 *   → {"id":1,"op":"add","args":[1,2,3]}   ← {"id":1,"result":6}
 */
import map from 'it-map'
import { pipe } from 'it-pipe'
import { json, JsonDecodeError, WebSocketServer, type Connection } from '../src/index.js'
import { isMain, serve } from './run.js'

export interface Request {
  id: number
  op: 'add' | 'mul'
  args: number[]
}

export type Response = { id: number, result: number } | { id: number | null, error: string }

export function answer (request: Request): Response {
  const id = typeof request?.id === 'number' ? request.id : null
  if (id === null || !Array.isArray(request.args) || !request.args.every((n) => typeof n === 'number')) {
    return { id, error: 'expected { id, op, args: number[] }' }
  }
  switch (request.op) {
    case 'add': return { id, result: request.args.reduce((a, b) => a + b, 0) }
    case 'mul': return { id, result: request.args.reduce((a, b) => a * b, 1) }
    default: return { id, error: `unknown op: ${String(request.op)}` }
  }
}

/** Requests in, responses out, one for one, in order. */
export async function calculator (conn: Connection): Promise<void> {
  try {
    await pipe(conn, json.decode<Request>, (requests) => map(requests, answer), json.encode, conn)
  } catch (err) {
    if (!(err instanceof JsonDecodeError)) throw err
    conn.close(err.closeCode, err.message) // 1007, invalid payload data
  }
}

export function createServer (): WebSocketServer {
  return new WebSocketServer()
    .register('calculator', calculator)
    .register('', calculator)
}

if (isMain(import.meta.url)) await serve(createServer())
