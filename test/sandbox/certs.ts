/**
 * A throwaway PKI for one sandbox: a CA, the API server's certificate for 127.0.0.1 and a client certificate, all
 * made by the machine's `openssl` (EC P-256 keys are instant; node:crypto cannot issue certificates).
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface SandboxPki {
  caCert: string
  serverCert: string
  serverKey: string
  /** A client certificate signed by the CA, for kubeconfigs that authenticate with client-certificate-data. */
  clientCert: string
  clientKey: string
  /** The user name in the client certificate (its CN). */
  clientUser: string
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

export function createPki(dir: string, clientUser = 'cert-user'): SandboxPki {
  const days = '2'
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir)
  openssl(
    ['req', '-x509', '-new', '-key', 'ca.key', '-subj', '/CN=akm-sandbox-ca', '-days', days, '-out', 'ca.crt'],
    dir,
  )
  issue(
    dir,
    'server',
    '/CN=akm-sandbox-apiserver',
    'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth',
    days,
  )
  issue(dir, 'client', `/O=system:masters/CN=${clientUser}`, 'extendedKeyUsage=clientAuth', days)
  const read = (name: string) => readFileSync(join(dir, name), 'utf8')
  return {
    caCert: read('ca.crt'),
    serverCert: read('server.crt'),
    serverKey: read('server.key'),
    clientCert: read('client.crt'),
    clientKey: read('client.key'),
    clientUser,
  }
}

function issue(dir: string, name: string, subject: string, extensions: string, days: string): void {
  writeFileSync(join(dir, `${name}.ext`), `${extensions}\n`)
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.ec.key`], dir)
  // PKCS#8, the form every TLS stack (Go's included) reads.
  openssl(['pkcs8', '-topk8', '-nocrypt', '-in', `${name}.ec.key`, '-out', `${name}.key`], dir)
  openssl(['req', '-new', '-key', `${name}.key`, '-subj', subject, '-out', `${name}.csr`], dir)
  openssl(
    [
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-days',
      days,
      '-extfile',
      `${name}.ext`,
      '-out',
      `${name}.crt`,
    ],
    dir,
  )
}
