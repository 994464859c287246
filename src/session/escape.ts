/**
 * OpenSSH's escape sequences for a session that may freeze: `~.` at the start of a line ends it, `~?` lists the
 * escapes, `~~` sends one `~`. The `~` is held back until the next byte shows whether it starts an escape.
 */
export type EscapeAction = 'disconnect' | 'help'

export interface EscapeResult {
  /** Bytes to send on to the remote side. */
  forward: Buffer
  actions: EscapeAction[]
}

const newlineBytes = new Set([0x0d, 0x0a])

export class EscapeDetector {
  private atLineStart = true
  private pendingEscape = false
  private readonly escapeByte: number | undefined

  /** `escapeChar` is a single character, or 'none' to disable escapes (as `ssh -e none`). */
  constructor(escapeChar: string = '~') {
    this.escapeByte = escapeChar === 'none' ? undefined : escapeChar.charCodeAt(0)
  }

  push(chunk: Buffer): EscapeResult {
    if (this.escapeByte === undefined) return { forward: chunk, actions: [] }
    const out: number[] = []
    const actions: EscapeAction[] = []
    for (const byte of chunk) {
      if (this.pendingEscape) {
        this.pendingEscape = false
        if (byte === 0x2e /* . */) {
          actions.push('disconnect')
          // Anything typed after ~. is not for the remote side.
          return { forward: Buffer.from(out), actions }
        }
        if (byte === 0x3f /* ? */) {
          actions.push('help')
          this.atLineStart = false
          continue
        }
        if (byte === this.escapeByte) {
          out.push(byte)
          this.atLineStart = false
          continue
        }
        // Not an escape after all: send the held escape character and this byte.
        out.push(this.escapeByte)
      } else if (this.atLineStart && byte === this.escapeByte) {
        this.pendingEscape = true
        continue
      }
      out.push(byte)
      this.atLineStart = newlineBytes.has(byte)
    }
    return { forward: Buffer.from(out), actions }
  }
}

export function escapeHelp(escapeChar: string): string {
  const e = escapeChar
  return [
    'Supported escape sequences:',
    ` ${e}.   - terminate session`,
    ` ${e}?   - this message`,
    ` ${e}${e}   - send the escape character by typing it twice`,
    '(Note that escapes are only recognized immediately after newline.)',
    '',
  ].join('\r\n')
}
