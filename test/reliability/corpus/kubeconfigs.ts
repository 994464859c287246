/**
 * Malformed kubeconfigs: each a file (or a KUBECONFIG / --kubeconfig value) that akm-access must refuse with exit 3
 * (6 for a credential plugin that runs but fails) and a message that names the problem, never a stack trace.
 * Generated from the sandbox's own kubeconfig, so that each case is wrong in exactly one way.
 */
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Sandbox } from '../../sandbox/index.js'

export interface KubeconfigCase {
  name: string
  /** Writes what the case needs under `dir`; returns the KUBECONFIG value (or undefined and extra args). */
  arrange(dir: string, sandbox: Sandbox): { kubeconfig: string; args?: string[] }
  code: number
  message: RegExp
}

type Json = Record<string, unknown>

/** The sandbox's token kubeconfig as an object, with one edit. */
function edited(
  sandbox: Sandbox,
  edit: (config: Json & { clusters: Json[]; users: Json[]; contexts: Json[] }) => void,
) {
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    'current-context': 'sandbox',
    clusters: [
      {
        name: 'sandbox',
        cluster: {
          server: sandbox.url,
          'certificate-authority-data': Buffer.from(sandbox.pki.caCert).toString('base64'),
        },
      },
    ],
    users: [{ name: 'sandbox-user', user: { token: sandbox.token } }],
    contexts: [
      { name: 'sandbox', context: { cluster: 'sandbox', user: 'sandbox-user', namespace: sandbox.namespace } },
    ],
  }
  edit(config)
  return config
}

const cluster = (config: { clusters: Json[] }) => (config.clusters[0] as { cluster: Json }).cluster
const user = (config: { users: Json[] }) => (config.users[0] as { user: Json }).user
const context = (config: { contexts: Json[] }) => (config.contexts[0] as { context: Json }).context

function file(dir: string, name: string, content: string | Buffer): string {
  const path = join(dir, name)
  writeFileSync(path, content, { mode: 0o600 })
  return path
}

function json(name: string, edit: Parameters<typeof edited>[1], code: number, message: RegExp): KubeconfigCase {
  return {
    name,
    arrange: (dir, sandbox) => ({ kubeconfig: file(dir, 'config', JSON.stringify(edited(sandbox, edit), null, 2)) }),
    code,
    message,
  }
}

function raw(name: string, content: string | Buffer, message: RegExp): KubeconfigCase {
  return { name, arrange: (dir) => ({ kubeconfig: file(dir, 'config', content) }), code: 3, message }
}

function plugin(dir: string, script: string): string {
  const path = join(dir, 'plugin.sh')
  writeFileSync(path, `#!/bin/sh\n${script}\n`)
  chmodSync(path, 0o755)
  return path
}

export const kubeconfigCases: KubeconfigCase[] = [
  raw('an empty file', '', /kubeconfig|context/i),
  raw('binary garbage', Buffer.from([0, 159, 146, 150, 255, 0, 1, 2, 3, 10, 0]), /kubeconfig/i),
  raw('a YAML scalar', 'just some text\n', /kubeconfig/i),
  raw('a YAML list', '- a\n- b\n', /kubeconfig/i),
  raw(
    'JSON cut in the middle',
    '{"apiVersion": "v1", "kind": "Config", "clusters": [{"name": "x", "cluster": {"ser',
    /kubeconfig/i,
  ),
  raw('tabs for indentation', 'apiVersion: v1\nclusters:\n\t- name: x\n', /kubeconfig/i),
  raw(
    'a YAML alias bomb (a billion laughs)',
    [
      'a: &a ["x","x","x","x","x","x","x","x","x"]',
      'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]',
      'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]',
      'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]',
      'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]',
      'f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]',
      'g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]',
      'clusters: *g',
      '',
    ].join('\n'),
    /kubeconfig/i,
  ),
  raw(
    'clusters is a string',
    'apiVersion: v1\nkind: Config\nclusters: nope\ncurrent-context: x\n',
    /kubeconfig|context/i,
  ),
  json(
    'no current-context',
    (config) => {
      delete config['current-context']
    },
    3,
    /context/i,
  ),
  json(
    'current-context names a context that is not there',
    (config) => {
      config['current-context'] = 'elsewhere'
    },
    3,
    /elsewhere/,
  ),
  json(
    'the context names a cluster that is not there',
    (config) => {
      context(config).cluster = 'lost-cluster'
    },
    3,
    /lost-cluster/,
  ),
  json(
    'the context names a user that is not there',
    (config) => {
      context(config).user = 'lost-user'
    },
    3,
    /lost-user/,
  ),
  json(
    'the cluster has no server',
    (config) => {
      delete cluster(config).server
    },
    3,
    /server/i,
  ),
  json(
    'the server is not a URL',
    (config) => {
      cluster(config).server = 'https://exa mple:::443'
    },
    3,
    /server|URL/i,
  ),
  json(
    'the server has a scheme other than https/http',
    (config) => {
      cluster(config).server = 'ftp://127.0.0.1:21'
    },
    3,
    /ftp/,
  ),
  json(
    'certificate-authority-data is not base64',
    (config) => {
      cluster(config)['certificate-authority-data'] = '%%% not base64 %%%'
    },
    3,
    /certificate-authority/,
  ),
  json(
    'certificate-authority-data is base64 but not a certificate',
    (config) => {
      cluster(config)['certificate-authority-data'] = Buffer.from('hello, not a PEM').toString('base64')
    },
    3,
    /certificate-authority/,
  ),
  json(
    'certificate-authority names a file that is not there',
    (config) => {
      delete cluster(config)['certificate-authority-data']
      cluster(config)['certificate-authority'] = '/nonexistent/ca.crt'
    },
    3,
    /\/nonexistent\/ca\.crt/,
  ),
  json(
    'a client certificate without its key',
    (config) => {
      const u = user(config)
      delete u.token
      u['client-certificate-data'] = Buffer.from(
        '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n',
      ).toString('base64')
    },
    3,
    /client-key|client key/i,
  ),
  json(
    'a client key that is garbage',
    (config) => {
      const u = user(config)
      delete u.token
      u['client-certificate-data'] = Buffer.from('garbage').toString('base64')
      u['client-key-data'] = Buffer.from('garbage').toString('base64')
    },
    3,
    /client/i,
  ),
  json(
    'token-file names a file that is not there',
    (config) => {
      const u = user(config)
      delete u.token
      u.tokenFile = '/nonexistent/token'
    },
    3,
    /\/nonexistent\/token/,
  ),
  json(
    'proxy-url is not a URL',
    (config) => {
      cluster(config)['proxy-url'] = 'not a url at all'
    },
    3,
    /proxy/i,
  ),
  json(
    'insecure-skip-tls-verify together with a CA',
    (config) => {
      cluster(config)['insecure-skip-tls-verify'] = true
    },
    3,
    /insecure|certificate/i,
  ),
  {
    name: 'an exec credential plugin that is not installed',
    arrange: (dir, sandbox) => ({
      kubeconfig: file(
        dir,
        'config',
        JSON.stringify(
          edited(sandbox, (config) => {
            const u = user(config)
            delete u.token
            u.exec = { apiVersion: 'client.authentication.k8s.io/v1', command: 'no-such-credential-plugin' }
          }),
        ),
      ),
    }),
    code: 3,
    message: /no-such-credential-plugin/,
  },
  ...(
    [
      ['an exec credential plugin that prints garbage', 'echo "this is not JSON"', /credential plugin/i],
      ['an exec credential plugin that fails', 'echo "login required" >&2; exit 1', /credential plugin/i],
      [
        'an exec credential plugin that answers with another apiVersion',
        'echo \'{"apiVersion":"client.authentication.k8s.io/v9","kind":"ExecCredential","status":{"token":"x"}}\'',
        /credential plugin|apiVersion/i,
      ],
    ] as const
  ).map(
    ([name, script, message]): KubeconfigCase => ({
      name,
      arrange: (dir, sandbox) => {
        const command = plugin(dir, script)
        return {
          kubeconfig: file(
            dir,
            'config',
            JSON.stringify(
              edited(sandbox, (config) => {
                const u = user(config)
                delete u.token
                u.exec = { apiVersion: 'client.authentication.k8s.io/v1', command, interactiveMode: 'Never' }
              }),
            ),
          ),
        }
      },
      code: 6,
      message,
    }),
  ),
  {
    name: 'KUBECONFIG names a folder',
    arrange: (dir) => {
      mkdirSync(join(dir, 'a-folder'))
      return { kubeconfig: join(dir, 'a-folder') }
    },
    code: 3,
    message: /a-folder/,
  },
  {
    name: 'KUBECONFIG lists only files that are not there',
    arrange: (dir) => ({ kubeconfig: `${join(dir, 'missing-1')}:${join(dir, 'missing-2')}` }),
    code: 3,
    message: /kubeconfig/i,
  },
  {
    name: '--kubeconfig names a file that is not there',
    arrange: (dir, sandbox) => ({ kubeconfig: sandbox.kubeconfigPath, args: ['--kubeconfig', join(dir, 'nope.yaml')] }),
    code: 3,
    message: /nope\.yaml/,
  },
  {
    name: '--context names a context that is not there',
    arrange: (_dir, sandbox) => ({ kubeconfig: sandbox.kubeconfigPath, args: ['--context', 'no-such-context'] }),
    code: 3,
    message: /no-such-context/,
  },
]
