import { describe, expect, it } from 'vitest'
import { AccessError, ExitCode } from '../../../src/errors.js'
import { selectProxy, useProxy } from '../../../src/kube/proxy.js'

describe('NO_PROXY matching (Go httpproxy semantics)', () => {
  it.each([
    // host, port, NO_PROXY, proxied?
    ['api.example.com', '443', '', true],
    ['api.example.com', '443', '*', false],
    ['api.example.com', '443', 'example.com', false],
    ['example.com', '443', 'example.com', false],
    ['notexample.com', '443', 'example.com', true],
    ['api.example.com', '443', '.example.com', false],
    ['example.com', '443', '.example.com', true],
    ['api.example.com', '443', '*.example.com', false],
    ['example.com', '443', '*.example.com', true],
    ['API.Example.COM', '443', 'example.com', false],
    ['api.example.com', '443', 'example.com:6443', true],
    ['api.example.com', '6443', 'example.com:6443', false],
    ['api.example.com', '443', ' other.org , example.com ', false],
    ['10.1.2.3', '443', '10.0.0.0/8', false],
    ['11.1.2.3', '443', '10.0.0.0/8', true],
    ['10.1.2.3', '443', '10.1.2.3', false],
    ['10.1.2.3', '6443', '10.1.2.3:443', true],
    ['10.1.2.3', '443', '10.1.2.3:443', false],
    ['fd00::5', '443', 'fd00::/16', false],
    ['fd00::5', '443', '[fd00::5]:443', false],
    ['fd00::5', '443', 'fd00:0:0::5', false],
    // CIDRs only match IP literals, never host names.
    ['kube.internal', '443', '10.0.0.0/8', true],
    // Go never proxies localhost or loopback addresses.
    ['localhost', '443', '', false],
    ['127.0.0.1', '443', '', false],
    ['127.8.9.10', '443', '', false],
    ['::1', '443', '', false],
  ])('%s:%s with NO_PROXY=%j → proxied %s', (host, port, noProxy, proxied) => {
    expect(useProxy(host, port, noProxy)).toBe(proxied)
  })
})

describe('selectProxy', () => {
  const server = new URL('https://api.example.com:6443')

  it('prefers HTTPS_PROXY to https_proxy, and ignores HTTP_PROXY for https servers', () => {
    expect(
      selectProxy(server, { HTTPS_PROXY: 'http://upper:3128', https_proxy: 'http://lower:3128' }, undefined)?.host,
    ).toBe('upper')
    expect(selectProxy(server, { https_proxy: 'http://lower:3128' }, undefined)?.from).toBe('https_proxy')
    expect(selectProxy(server, { HTTP_PROXY: 'http://plain:3128' }, undefined)).toBeUndefined()
    expect(selectProxy(new URL('http://api.example.com'), { HTTP_PROXY: 'http://plain:3128' }, undefined)?.host).toBe(
      'plain',
    )
  })

  it('uses no_proxy when NO_PROXY is not set, with the default port of the scheme', () => {
    expect(
      selectProxy(new URL('https://api.example.com'), { HTTPS_PROXY: 'p:1', no_proxy: 'example.com:443' }, undefined),
    ).toBeUndefined()
  })

  it('parses proxy URLs as Go does', () => {
    expect(selectProxy(server, { HTTPS_PROXY: 'proxy.corp:3128' }, undefined)).toEqual({
      display: 'http://proxy.corp:3128',
      protocol: 'http:',
      host: 'proxy.corp',
      port: 3128,
      authorization: undefined,
      from: 'HTTPS_PROXY',
    })
    expect(selectProxy(server, { HTTPS_PROXY: 'https://proxy.corp' }, undefined)).toMatchObject({
      protocol: 'https:',
      port: 443,
    })
    expect(selectProxy(server, { HTTPS_PROXY: 'http://proxy.corp' }, undefined)).toMatchObject({ port: 80 })
    expect(selectProxy(server, { HTTPS_PROXY: 'http://u%3Ax:p%40ss@[fd00::1]:8080' }, undefined)).toMatchObject({
      display: 'http://[fd00::1]:8080',
      host: 'fd00::1',
      authorization: `Basic ${Buffer.from('u:x:p@ss').toString('base64')}`,
    })
  })

  it('lets the kubeconfig proxy-url win over the environment and NO_PROXY', () => {
    expect(selectProxy(server, { HTTPS_PROXY: 'http://env:1', NO_PROXY: '*' }, 'http://kubeconfig:2')?.from).toBe(
      'proxy-url in the kubeconfig',
    )
  })

  it('refuses SOCKS and unknown schemes with a config error', () => {
    for (const url of ['socks5://127.0.0.1:1080', 'socks5h://p:1080']) {
      const error = (() => {
        try {
          selectProxy(server, { HTTPS_PROXY: url }, undefined)
        } catch (e) {
          return e
        }
      })()
      expect(error).toBeInstanceOf(AccessError)
      expect((error as AccessError).exitCode).toBe(ExitCode.config)
      expect((error as AccessError).message).toMatch(/^SOCKS proxies are not supported yet/)
    }
    expect(() => selectProxy(server, {}, 'ftp://p:21')).toThrow('unsupported proxy scheme ftp:')
  })
})
