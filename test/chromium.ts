// Debian's Chromium, headless, as every browser test launches it (no downloaded browser; no
// network beyond the machine).
import { chromium, type Browser } from 'playwright-core'

/** Launch /usr/bin/chromium headless with the flags this machine needs, and `extraArgs` (e.g. `--ignore-certificate-errors`). */
export function launchChromium (extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking', ...extraArgs],
    timeout: 30_000
  })
}
