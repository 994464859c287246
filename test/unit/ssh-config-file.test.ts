import { mkdirSync, mkdtempSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { describe, expect, it } from 'vitest'
import { isPasswordPrompt } from '../../src/ssh/askpass.js'
import {
  configPath,
  type HostEntry,
  installHostBlock,
  removeHostBlock,
  renderHostBlock,
  shellQuote,
  sshConfigPaths,
  uninstallHostBlock,
  upsertHostBlock,
  withInclude,
} from '../../src/ssh/ssh-config-file.js'

const keyEntry: HostEntry = {
  host: 'akamas',
  description: 'The Akamas management pod.',
  user: 'akamas',
  proxyCommand: ['/usr/bin/node', '/opt/akm access/bin/run.js', 'proxy', '--context', 'prod', '--namespace', 'akamas'],
  hostKeyAlias: 'akm/k8s.example.com-443/akamas/management-pod',
  knownHostsFile: '/home/u/.config/akm-access/known_hosts',
  identityFile: '/home/u/.config/akm-access/keys/akamas',
}

describe('renderHostBlock', () => {
  it('writes a key entry: proxy, pinned host key, strict checking, the key only', () => {
    const block = renderHostBlock(keyEntry)
    expect(block).toBe(
      [
        '# >>> akm-access akamas >>>',
        '# The Akamas management pod.',
        'Host akamas',
        '  User akamas',
        "  ProxyCommand /usr/bin/node '/opt/akm access/bin/run.js' proxy --context prod --namespace akamas",
        '  HostKeyAlias akm/k8s.example.com-443/akamas/management-pod',
        '  UserKnownHostsFile /home/u/.config/akm-access/known_hosts',
        '  StrictHostKeyChecking yes',
        '  CheckHostIP no',
        '  UpdateHostKeys no',
        '  ServerAliveInterval 30',
        '  IdentityFile /home/u/.config/akm-access/keys/akamas',
        '  IdentitiesOnly yes',
        '# <<< akm-access akamas <<<',
        '',
      ].join('\n'),
    )
  })

  it('writes a password entry: no key, and a Match exec that starts the master, with its ControlPath', () => {
    const block = renderHostBlock({
      ...keyEntry,
      identityFile: undefined,
      master: {
        command: ['/usr/bin/node', '/opt/akm/bin/run.js', 'ssh-master', '--host', 'akamas', '--context', 'a b'],
        controlPath: '/home/u/.config/akm-access/mux/akamas',
      },
    })
    expect(block).not.toContain('IdentityFile')
    expect(block).toContain('  PubkeyAuthentication no\n')
    expect(block).toContain(
      `Match originalhost akamas exec "/usr/bin/node /opt/akm/bin/run.js ssh-master --host akamas --context 'a b'"\n  ControlPath /home/u/.config/akm-access/mux/akamas\n`,
    )
  })

  it('escapes % (ssh expands %-tokens) and quotes paths with blanks', () => {
    expect(configPath('/home/a b/known_hosts')).toBe('"/home/a b/known_hosts"')
    expect(configPath('/home/100%/k')).toBe('/home/100%%/k')
    expect(renderHostBlock({ ...keyEntry, proxyCommand: ['/x/100%/node', 'proxy'] })).toContain(
      'ProxyCommand /x/100%%/node proxy',
    )
    expect(() => configPath('/a"b')).toThrow(/cannot be written/)
  })
})

describe('shellQuote', () => {
  it('leaves plain words alone and single-quotes the rest', () => {
    expect(shellQuote('/usr/bin/node')).toBe('/usr/bin/node')
    expect(shellQuote('a b')).toBe("'a b'")
    expect(shellQuote("it's")).toBe("'it'\\''s'")
    expect(shellQuote('$HOME')).toBe("'$HOME'")
  })
})

describe('the managed file and the Include', () => {
  const block = (host: string) => renderHostBlock({ ...keyEntry, host })

  it('adds, replaces and removes one host block, leaving the others as they were', () => {
    const one = upsertHostBlock('', 'akamas', block('akamas'))
    expect(one).toMatch(/^# Managed by akm-access/)
    const two = upsertHostBlock(one, 'akamas-2', block('akamas-2'))
    expect(two.startsWith(one)).toBe(true)
    const replaced = upsertHostBlock(two, 'akamas', block('akamas').replace('User akamas', 'User other'))
    expect(replaced).toContain('User other')
    expect(replaced.split('User other')).toHaveLength(2)
    expect(replaced).toContain(block('akamas-2'))
    expect(removeHostBlock(two, 'akamas-2')).toBe(one)
    expect(removeHostBlock(two, 'nope')).toBeUndefined()
    // A host whose name extends another's is another host.
    expect(upsertHostBlock(one, 'akamas-2', block('akamas-2'))).toContain(block('akamas'))
  })

  it('puts the Include first, keeps the user file byte for byte, and does it once', () => {
    const mine = '# my config\r\nHost *\r\n  ServerAliveInterval 60\r\n'
    const included = withInclude(mine, '/home/u/.ssh/akm-access/config')
    expect(included).toBe(
      `# Added by akm-access ssh-config: its Host entries (remove these two lines to disable them)\nInclude /home/u/.ssh/akm-access/config\n\n${mine}`,
    )
    expect(withInclude(included, '/home/u/.ssh/akm-access/config')).toBe(included)
    // An Include the user wrote themselves counts too.
    const own = 'Include "/home/u/.ssh/akm-access/config"\nHost x\n'
    expect(withInclude(own, '/home/u/.ssh/akm-access/config')).toBe(own)
  })

  it('writes new files 0600 in a 0700 folder, keeps the mode of the user’s file, and writes through a symlink', () => {
    const home = mkdtempSync(join(tmpdir(), 'akm-sshcfg-unit-'))
    const paths = sshConfigPaths(home)
    const dotfiles = join(home, 'dotfiles')
    mkdirSync(dotfiles)
    mkdirSync(paths.sshDir, { mode: 0o700 })
    writeFileSync(join(dotfiles, 'ssh_config'), 'Host x\n', { mode: 0o640 })
    symlinkSync(join(dotfiles, 'ssh_config'), paths.userConfig)

    expect(installHostBlock(paths, 'akamas', block('akamas'))).toEqual({
      managedConfig: 'created',
      userConfig: 'updated',
    })
    expect(statSync(paths.managedConfig).mode & 0o777).toBe(0o600)
    expect(statSync(join(paths.sshDir, 'akm-access')).mode & 0o777).toBe(0o700)
    // The link is still a link, and the file it points to got the Include, with its mode.
    expect(readFileSync(join(dotfiles, 'ssh_config'), 'utf8')).toMatch(/^# Added by akm-access[^\n]*\nInclude /)
    expect(statSync(join(dotfiles, 'ssh_config')).mode & 0o777).toBe(0o640)
    expect(installHostBlock(paths, 'akamas', block('akamas'))).toEqual({
      managedConfig: 'unchanged',
      userConfig: 'unchanged',
    })

    expect(uninstallHostBlock(paths, 'akamas')).toBe(true)
    expect(readFileSync(join(dotfiles, 'ssh_config'), 'utf8')).toBe('Host x\n')
    expect(uninstallHostBlock(paths, 'akamas')).toBe(false)
  })
})

describe('isPasswordPrompt', () => {
  it('answers password prompts only', () => {
    expect(isPasswordPrompt("akamas@akamas's password: ")).toBe(true)
    expect(isPasswordPrompt('Password: ')).toBe(true)
    expect(isPasswordPrompt("Enter passphrase for key '/k': ")).toBe(false)
    expect(isPasswordPrompt('Are you sure you want to continue connecting (yes/no/[fingerprint])? ')).toBe(false)
  })
})
