/**
 * sync's --exclude patterns, as rsync and .gitignore read them: a pattern without `/` matches a name at any depth
 * (`*.log`, `.git`), one with `/` matches the path from the synced folder (`build/*.tmp`; a leading `/` anchors
 * nothing more). `*` and `?` stay within one name, `**` crosses folders, `[abc]` is a class. An excluded folder is
 * left out whole, on both sides: it is neither sent nor deleted.
 */
import type { PathFilter } from './tree.js'

export function excludeFilter(patterns: readonly string[]): PathFilter | undefined {
  if (patterns.length === 0) return undefined
  const compiled = patterns.map((pattern) => {
    const trimmed = pattern.replace(/^\/+/, '').replace(/\/+$/, '')
    return { anchored: pattern.includes('/'), regex: globToRegExp(trimmed) }
  })
  return (relativePath) => {
    const name = relativePath.slice(relativePath.lastIndexOf('/') + 1)
    return compiled.some(({ anchored, regex }) => regex.test(anchored ? relativePath : name))
  }
}

export function globToRegExp(glob: string): RegExp {
  let source = ''
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i]!
    if (char === '*') {
      if (glob[i + 1] === '*') {
        // `**/` also matches nothing at all: a/**/b matches a/b.
        const slash = glob[i + 2] === '/'
        source += slash ? '(?:.*/)?' : '.*'
        i += slash ? 2 : 1
      } else source += '[^/]*'
    } else if (char === '?') source += '[^/]'
    else if (char === '[') {
      const end = glob.indexOf(']', i + 2)
      if (end < 0) source += '\\['
      else {
        const body = glob
          .slice(i + 1, end)
          .replace(/^!/, '^')
          .replace(/\\/g, '\\\\')
        source += `[${body}]`
        i = end
      }
    } else source += char.replace(/[.+^${}()|\\]/g, '\\$&')
  }
  return new RegExp(`^${source}$`)
}
