import { describe, expect, it } from 'vitest'
import { connectionFlags } from '../../src/cli/warm-up.js'

describe('which runs open API server connections ahead, and with which kubeconfig and context', () => {
  it.each([
    [['password'], {}],
    [['shell', '--context', 'prod', '-n', 'x'], { context: 'prod' }],
    [
      ['ssh', '--kubeconfig=/k/config', '--context=dev', '--', 'ls', '--context', 'remote'],
      { kubeconfig: '/k/config', context: 'dev' },
    ],
    [['forward', '--port', '2222'], {}],
    [['doctor', '--json'], {}],
    [['sync', 'dir', '--dry-run'], {}],
    [['ssh-config', '--write'], {}],
    [['akamas', 'list', 'study', '--context', 'theirs'], {}],
    [['akamas', '--context', 'ours', '--', 'list', 'study'], { context: 'ours' }],
    [['akamas', '--help'], {}],
  ])('%j → %j', (argv, flags) => {
    expect(connectionFlags(argv)).toEqual(flags)
  })

  it.each([
    [[]],
    [['--help']],
    [['help', 'ssh']],
    [['autocomplete', 'bash']],
    [['password', '--help']],
    [['shell', '-h']],
    [['ssh', '--docker']],
    [['akamas', '--print-alias']],
    [['password', '--context']],
    [['password', '--kubeconfig=']],
  ])('%j → none', (argv) => {
    expect(connectionFlags(argv)).toBeUndefined()
  })
})
