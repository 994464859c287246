import { describe, expect, it } from 'vitest'
import { EscapeDetector } from '../../src/session/escape.js'

const push = (detector: EscapeDetector, text: string) => {
  const { forward, actions } = detector.push(Buffer.from(text))
  return { forward: forward.toString(), actions }
}

describe('EscapeDetector', () => {
  it('ends the session on ~. at the start of the session', () => {
    expect(push(new EscapeDetector(), '~.')).toEqual({ forward: '', actions: ['disconnect'] })
  })

  it('ends the session on ~. after a newline, and drops what follows', () => {
    expect(push(new EscapeDetector(), 'ls\r~.rest')).toEqual({ forward: 'ls\r', actions: ['disconnect'] })
  })

  it('passes ~. through in the middle of a line', () => {
    expect(push(new EscapeDetector(), 'echo ~.')).toEqual({ forward: 'echo ~.', actions: [] })
  })

  it('holds ~ across chunks until the next byte decides', () => {
    const detector = new EscapeDetector()
    expect(push(detector, '\r~')).toEqual({ forward: '\r', actions: [] })
    expect(push(detector, '.')).toEqual({ forward: '', actions: ['disconnect'] })
  })

  it('sends a single ~ for ~~ and both bytes for ~x', () => {
    expect(push(new EscapeDetector(), '~~')).toEqual({ forward: '~', actions: [] })
    expect(push(new EscapeDetector(), '~x')).toEqual({ forward: '~x', actions: [] })
  })

  it('asks for help on ~?', () => {
    expect(push(new EscapeDetector(), '~?')).toEqual({ forward: '', actions: ['help'] })
  })

  it('is transparent with escape char none', () => {
    expect(push(new EscapeDetector('none'), '~.')).toEqual({ forward: '~.', actions: [] })
  })

  it('honours another escape character', () => {
    expect(push(new EscapeDetector('%'), '~.%.')).toEqual({ forward: '~.%.', actions: [] })
    expect(push(new EscapeDetector('%'), '%.')).toEqual({ forward: '', actions: ['disconnect'] })
  })
})
