// Debian's Chromium, headless, as every browser test launches it (no downloaded browser; no
// network beyond the machine).
import { chromium, type Browser } from 'playwright-core'
import type { PeerTestFn } from './peers.js'

/** Launch /usr/bin/chromium headless with the flags this machine needs, and `extraArgs` (e.g. `--ignore-certificate-errors`). */
export function launchChromium (extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', ...extraArgs],
    timeout: 30_000
  })
}

/**
 * One Chromium for a file's tests: launched before them and closed after them through `test`
 * (the file's `peerTest('chromium')`, whose hooks do nothing when Chromium is absent). Returns
 * the running browser's getter.
 */
export function sharedChromium (test: Pick<PeerTestFn, 'before' | 'after'>, extraArgs: readonly string[] = []): () => Browser {
  let browser: Browser | undefined
  test.before(async () => {
    browser = await launchChromium(extraArgs)
  })
  test.after.always(async () => {
    await browser?.close()
  })
  return () => {
    if (browser === undefined) throw new Error('Chromium was not launched')
    return browser
  }
}
