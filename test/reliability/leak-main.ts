// The full leak test as its own process (so the orchestrator's sockets are not counted):
//   node --expose-gc --import=tsx test/reliability/leak-main.ts --per-ending 1429
// Prints the LeakReport as JSON on the last line of stdout.
import { parseArgs } from 'node:util'
import { runLeak } from './leak.js'

declare const gc: undefined | (() => void)
if (typeof gc !== 'function') throw new Error('run with --expose-gc')

const { values } = parseArgs({ options: { 'per-ending': { type: 'string', default: '1429' }, concurrency: { type: 'string', default: '50' } } })
const report = await runLeak({ perEnding: Number(values['per-ending']), concurrency: Number(values.concurrency), maxMsPerEnding: 90_000, gc })
console.log(JSON.stringify(report))
