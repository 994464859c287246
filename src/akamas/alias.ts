/**
 * `akm-access akamas --print-alias`: a shell function named `akamas`, so that the Akamas CLI typed on this machine
 * runs in the management pod. Everything after the function name reaches the Akamas CLI untouched (`--` keeps
 * akm-access's own parser away from it); options given next to --print-alias (a context, a namespace) are built in.
 */

export type AliasShell = 'bash' | 'zsh' | 'fish'

export const aliasShells: readonly AliasShell[] = ['bash', 'zsh', 'fish']

/** The shell named by $SHELL, if it is one we can write for; bash otherwise. */
export function detectShell(shellPath: string | undefined): AliasShell {
  const name = shellPath?.split('/').pop() ?? ''
  return (aliasShells as readonly string[]).includes(name) ? (name as AliasShell) : 'bash'
}

export function aliasScript(shell: AliasShell, bin: string, fixedArgs: readonly string[]): string {
  if (shell === 'fish') {
    const prefix = [bin, 'akamas', ...fixedArgs].map(quoteFish).join(' ')
    return [
      `# The Akamas CLI in the management pod, through ${bin}. Load it with:`,
      `#   ${bin} akamas --print-alias --shell fish | source`,
      "function akamas --description 'The Akamas CLI, run in the Akamas management pod'",
      `    ${prefix} -- $argv`,
      'end',
      '',
    ].join('\n')
  }
  const prefix = [bin, 'akamas', ...fixedArgs].map(quotePosix).join(' ')
  const rc = shell === 'zsh' ? '~/.zshrc' : '~/.bashrc'
  return [
    `# The Akamas CLI in the management pod, through ${bin}. Add to ${rc}:`,
    `#   eval "$(${bin} akamas --print-alias --shell ${shell})"`,
    // `command` so that a function (or alias) called akm-access cannot recurse into this one.
    `akamas() { command ${prefix} -- "$@"; }`,
    '',
  ].join('\n')
}

/** Single quotes, as bash, zsh and sh read them: nothing inside is special but the quote itself. */
export function quotePosix(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`
}

/** fish's single quotes: backslash and the quote are escaped inside. */
export function quoteFish(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/[\\']/g, (c) => `\\${c}`)}'`
}
