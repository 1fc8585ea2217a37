// Runs fixtures/py_client.py (Python websockets, through Debian's /usr/bin/python3) with a JSON
// spec on stdin and returns the JSON it prints: one runner for every test that drives it.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const SCRIPT = fileURLToPath(new URL('./fixtures/py_client.py', import.meta.url))

/** Run the Python client with `spec`; resolves with what it printed, parsed. */
export function runPythonClient<T> (spec: object): Promise<T> {
  return new Promise((resolve, reject) => {
    const child = execFile('/usr/bin/python3', [SCRIPT], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err !== null) {
        reject(new Error(`python client failed: ${err.message}\n${stderr}`))
        return
      }
      try {
        resolve(JSON.parse(stdout) as T)
      } catch {
        reject(new Error(`python client printed no JSON: ${stdout}\n${stderr}`))
      }
    })
    child.stdin?.end(JSON.stringify(spec))
  })
}

/** The bytes fixtures/py_client.py sends for `{ pattern: n }`. */
export function pattern (n: number): Buffer {
  const out = Buffer.alloc(n)
  for (let i = 0; i < n; i++) out[i] = (i % 256) % 251
  return out
}
