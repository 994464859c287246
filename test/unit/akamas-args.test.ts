import { describe, expect, it } from 'vitest'
import { aliasScript, detectShell, quoteFish, quotePosix } from '../../src/akamas/alias.js'
import { type LocalKind, planArgs } from '../../src/akamas/args.js'

const dir = '/work/.akm-access/uploads/run'
/** A pretend local disk. */
const disk: Record<string, LocalKind> = {
  'study.yaml': 'file',
  './study.yaml': 'file',
  'a/study.yaml': 'file',
  'b/study.yaml': 'file',
  '/home/me/wf.yml': 'file',
  './pack': 'dir',
  'pack/': 'dir',
  study: 'file', // a local file that happens to be called like an Akamas word
  workflow: 'file',
  'notes.txt': 'file',
}
const exists = (path: string) => disk[path]
const plan = (args: string[]) => planArgs(args, dir, exists, (path) => path.replace(/^\.\//, ''))

describe('which Akamas CLI arguments are local files', () => {
  it('uploads existing paths that look like paths, keeping their names', () => {
    expect(plan(['create', 'study', './study.yaml'])).toEqual({
      args: ['create', 'study', `${dir}/study.yaml`],
      uploads: [{ local: './study.yaml', kind: 'file', remote: `${dir}/study.yaml` }],
    })
    expect(plan(['install', './pack']).args).toEqual(['install', `${dir}/pack`])
    expect(plan(['install', 'pack/']).uploads).toEqual([{ local: 'pack/', kind: 'dir', remote: `${dir}/pack` }])
    expect(plan(['create', 'workflow', '/home/me/wf.yml']).args[2]).toBe(`${dir}/wf.yml`)
  })

  it('never takes a word for a file, even when a local file has that name', () => {
    expect(plan(['list', 'study'])).toEqual({ args: ['list', 'study'], uploads: [] })
    expect(plan(['describe', 'workflow', 'notes.txt']).uploads).toEqual([])
  })

  it('takes the value of -f/--file whatever it looks like, if it exists', () => {
    expect(plan(['create', '-f', 'workflow']).args).toEqual(['create', '-f', `${dir}/workflow`])
    expect(plan(['create', '--file', 'study']).args).toEqual(['create', '--file', `${dir}/study`])
    expect(plan(['create', '--file=study.yaml']).args).toEqual(['create', `--file=${dir}/study.yaml`])
    expect(plan(['create', '--file=missing']).args).toEqual(['create', '--file=missing'])
  })

  it('judges --option=VALUE by its value', () => {
    expect(plan(['x', '--template=./study.yaml']).args).toEqual(['x', `--template=${dir}/study.yaml`])
    expect(plan(['x', '--name=study']).args).toEqual(['x', '--name=study'])
  })

  it('passes missing paths and pod paths through; :path loses its colon and is taken from /work', () => {
    expect(plan(['create', 'study', './missing.yaml']).args).toEqual(['create', 'study', './missing.yaml'])
    expect(plan(['create', 'study', '/work/s.yaml']).args).toEqual(['create', 'study', '/work/s.yaml'])
    expect(plan(['create', 'study', ':s.yaml', ':/tmp/x.json', '--file=:y.yaml'])).toEqual({
      args: ['create', 'study', '/work/s.yaml', '/tmp/x.json', '--file=/work/y.yaml'],
      uploads: [],
    })
  })

  it('uploads a file named twice once, and two files with one name to two places', () => {
    const twice = plan(['x', './study.yaml', 'study.yaml'])
    expect(twice.uploads).toHaveLength(1)
    expect(twice.args).toEqual(['x', `${dir}/study.yaml`, `${dir}/study.yaml`])
    const clash = plan(['x', 'a/study.yaml', 'b/study.yaml'])
    expect(clash.args).toEqual(['x', `${dir}/study.yaml`, `${dir}/2/study.yaml`])
  })

  it('leaves tricky arguments alone', () => {
    const tricky = ['a b', '$HOME', '*', '--', "it's", '"q"', '', '-n', '--x=']
    expect(plan(tricky)).toEqual({ args: tricky, uploads: [] })
  })
})

describe('akamas --print-alias', () => {
  it('writes a function for bash and zsh that passes every argument after --', () => {
    expect(aliasScript('bash', 'akm-access', [])).toContain('akamas() { command akm-access akamas -- "$@"; }')
    expect(aliasScript('zsh', 'akm-access', ['-n', 'my ns'])).toContain(
      `akamas() { command akm-access akamas -n 'my ns' -- "$@"; }`,
    )
  })

  it('writes a fish function', () => {
    const fish = aliasScript('fish', 'akm-access', ['--context', "it's"])
    expect(fish).toContain('function akamas --description')
    expect(fish).toContain("    akm-access akamas --context 'it\\'s' -- $argv\nend")
  })

  it('quotes words for each shell and picks the shell from $SHELL', () => {
    expect(quotePosix("it's a $x")).toBe(`'it'\\''s a $x'`)
    expect(quoteFish('back\\slash')).toBe(`'back\\\\slash'`)
    expect(detectShell('/usr/bin/fish')).toBe('fish')
    expect(detectShell('/bin/zsh')).toBe('zsh')
    expect(detectShell('/bin/tcsh')).toBe('bash')
    expect(detectShell(undefined)).toBe('bash')
  })
})
