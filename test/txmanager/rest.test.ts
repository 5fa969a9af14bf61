// The REST API over real HTTP on 127.0.0.1 (port 0), in Tessera's shapes.
import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TxManagerServer } from '../../txmanager/index.js';
import { type TmCluster, tmCluster } from './fixtures.js';

let cluster: TmCluster;
const servers: Record<string, TxManagerServer> = {};
const urls: Record<string, string> = {};

beforeAll(async () => {
  cluster = await tmCluster({ options: () => ({ pushTimeoutMs: 1_000 }) });
  for (const nodeId of Object.keys(cluster.nodes)) {
    servers[nodeId] = new TxManagerServer(cluster.nodes[nodeId].tm, {
      port: 0,
      maxRequestBodyBytes: nodeId === 'node-c' ? 2_000 : undefined,
    });
    urls[nodeId] = (await servers[nodeId].start()).url;
  }
});
afterAll(async () => {
  for (const server of Object.values(servers)) await server.stop();
  await cluster.stop();
});

async function json(res: Response): Promise<Record<string, unknown>> {
  expect(res.headers.get('content-type')).toBe('application/json');
  return (await res.json()) as Record<string, unknown>;
}

const post = (url: string, body: unknown): Promise<Response> =>
  fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

describe('transaction manager REST API', () => {
  it('binds 127.0.0.1 by default and answers /upcheck', async () => {
    expect(servers['node-a'].address().host).toBe('127.0.0.1');
    const res = await fetch(`${urls['node-a']}/upcheck`);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("I'm up!");
  });

  it("GET /keys lists this node's keys; GET /partyinfo/keys every known key and its node", async () => {
    expect(await json(await fetch(`${urls['node-b']}/keys`))).toEqual({
      keys: cluster.nodes['node-b'].keys.map((key) => ({ key })),
    });
    const party = await json(await fetch(`${urls['node-b']}/partyinfo/keys`));
    const expected = Object.values(cluster.nodes).flatMap((n) => n.keys.map((key) => ({ key, node: n.nodeId })));
    expect(party.keys).toEqual(expect.arrayContaining(expected));
    expect(party.keys).toHaveLength(expected.length);
  });

  it('POST /send → 201 { key }; GET /transaction/{key} → { payload } at parties, 404 elsewhere', async () => {
    const payload = Buffer.from('{"ops":[{"type":"put","key":"k","value":"v"}]}').toString('base64');
    const res = await post(`${urls['node-a']}/send`, {
      payload,
      from: cluster.nodes['node-a'].keys[0],
      to: [cluster.nodes['node-b'].keys[0]],
    });
    expect(res.status).toBe(201);
    const { key } = await json(res);
    expect(typeof key).toBe('string');
    const path = `/transaction/${encodeURIComponent(key as string)}`;
    for (const nodeId of ['node-a', 'node-b']) {
      const got = await fetch(urls[nodeId] + path);
      expect(got.status).toBe(200);
      expect((await json(got)).payload).toBe(payload);
    }
    const notParty = await fetch(urls['node-c'] + path);
    expect(notParty.status).toBe(404);
    expect(await json(notParty)).toMatchObject({ code: 'NOT_A_PARTY' });
    const asKey = await fetch(`${urls['node-b']}${path}?to=${encodeURIComponent(cluster.nodes['node-b'].keys[0])}`);
    expect(asKey.status).toBe(200);
  });

  it('client mistakes are 4xx with a JSON error: malformed JSON, bad fields, unknown key, bad hash, unknown route, wrong method', async () => {
    const malformed = await post(`${urls['node-a']}/send`, '{"payload": ');
    expect(malformed.status).toBe(400);
    expect(await json(malformed)).toMatchObject({ code: 'MALFORMED_JSON' });
    expect((await post(`${urls['node-a']}/send`, { payload: 'not base64!', to: [] })).status).toBe(400);
    expect((await post(`${urls['node-a']}/send`, { payload: 'AAAA', to: 'x' })).status).toBe(400);
    expect((await post(`${urls['node-a']}/send`, [])).status).toBe(400);
    const unknown = await post(`${urls['node-a']}/send`, {
      payload: 'AAAA',
      to: [Buffer.alloc(32, 5).toString('base64')],
    });
    expect(unknown.status).toBe(400);
    expect(await json(unknown)).toMatchObject({ code: 'TXM_UNKNOWN_RECIPIENT_KEY' });
    const badHash = await fetch(`${urls['node-a']}/transaction/abc`);
    expect(badHash.status).toBe(400);
    expect(await json(badHash)).toMatchObject({ code: 'TXM_INVALID_REQUEST' });
    const nowhere = await fetch(`${urls['node-a']}/nowhere`);
    expect(nowhere.status).toBe(404);
    expect(await json(nowhere)).toMatchObject({ code: 'NOT_FOUND' });
    expect((await fetch(`${urls['node-a']}/send`)).status).toBe(405);
  });

  it('a body over the size limit is 413, and the server keeps serving', async () => {
    const big = await post(`${urls['node-c']}/send`, { payload: Buffer.alloc(3_000).toString('base64'), to: [] });
    expect(big.status).toBe(413);
    expect(await json(big)).toMatchObject({ code: 'TXM_PAYLOAD_TOO_LARGE' });
    // Without a content-length (chunked), the limit is enforced while reading.
    const chunked = await new Promise<number>((resolve, reject) => {
      const url = new URL(`${urls['node-c']}/send`);
      const req = httpRequest(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'transfer-encoding': 'chunked' },
        },
        (res) => {
          res.resume();
          resolve(res.statusCode as number);
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 10; i++) req.write('x'.repeat(500));
      req.end();
    });
    expect(chunked).toBe(413);
    expect((await fetch(`${urls['node-c']}/upcheck`)).status).toBe(200);
  });

  it('a down recipient is 503 RecipientUnavailable naming it; a store failure on read is 5xx, never 404', async () => {
    cluster.network.setDown('node-c', true);
    const down = await post(`${urls['node-a']}/send`, { payload: 'AAAA', to: [cluster.nodes['node-c'].keys[0]] });
    expect(down.status).toBe(503);
    const body = await json(down);
    expect(body.code).toBe('TXM_RECIPIENT_UNAVAILABLE');
    expect(body.error).toContain('node-c');
    cluster.network.setDown('node-c', false);

    // A cluster of its own: this test breaks node-b's store.
    const own = await tmCluster({ nodeIds: ['node-a', 'node-b'] });
    const server = new TxManagerServer(own.nodes['node-b'].tm);
    const { url } = await server.start();
    const key = await own.nodes['node-a'].tm.send(Buffer.from('x'), undefined, [own.nodes['node-b'].keys[0]]);
    const path = `${url}/transaction/${encodeURIComponent(key)}`;
    expect((await fetch(path)).status).toBe(200); // positive control
    await own.nodes['node-b'].store.close();
    const failed = await fetch(path);
    expect(failed.status).toBe(500);
    expect(await json(failed)).toMatchObject({ code: 'TXM_STORAGE_FAILURE' });
    await server.stop();
    await own.stop();
  });
});

describe('TxManagerServer lifecycle', () => {
  it('binds a configured host and port, stops, and releases the port', async () => {
    const first = new TxManagerServer(cluster.nodes['node-a'].tm, { host: '127.0.0.1', port: 0 });
    const { port } = await first.start();
    await first.stop();
    const second = new TxManagerServer(cluster.nodes['node-a'].tm, { host: '127.0.0.1', port });
    expect((await second.start()).port).toBe(port);
    expect((await fetch(`http://127.0.0.1:${port}/upcheck`)).status).toBe(200);
    await second.stop();
    await expect(fetch(`http://127.0.0.1:${port}/upcheck`)).rejects.toThrow();
  });
});

describe("storeraw / sendsignedtx (Tessera's externally signed flow)", () => {
  it('stores for the sender only, then delivers to recipients under the same hash', async () => {
    const payload = Buffer.from('signed elsewhere').toString('base64');
    const stored = await post(`${urls['node-a']}/storeraw`, { payload });
    expect(stored.status).toBe(200);
    const { key } = await json(stored);
    const path = `/transaction/${encodeURIComponent(key as string)}`;
    expect((await fetch(urls['node-a'] + path)).status).toBe(200);
    expect((await fetch(urls['node-b'] + path)).status).toBe(404);
    const sent = await post(`${urls['node-a']}/sendsignedtx`, { hash: key, to: [cluster.nodes['node-b'].keys[0]] });
    expect(sent.status).toBe(201);
    expect((await json(sent)).key).toBe(key);
    const atB = await fetch(urls['node-b'] + path);
    expect(atB.status).toBe(200);
    expect((await json(atB)).payload).toBe(payload);
  });

  it("sendsignedtx of an unknown hash is 404 TXM_UNKNOWN_PAYLOAD; of another node's payload 400", async () => {
    const unknownHash = Buffer.alloc(64, 1).toString('base64');
    const res = await post(`${urls['node-a']}/sendsignedtx`, { hash: unknownHash, to: [] });
    expect(res.status).toBe(404);
    expect(await json(res)).toMatchObject({ code: 'TXM_UNKNOWN_PAYLOAD' });
    const { key } = await json(
      await post(`${urls['node-a']}/send`, { payload: 'AAAA', to: [cluster.nodes['node-b'].keys[0]] }),
    );
    const foreign = await post(`${urls['node-b']}/sendsignedtx`, { hash: key, to: [] });
    expect(foreign.status).toBe(400);
    expect(await json(foreign)).toMatchObject({ code: 'TXM_UNKNOWN_SENDER_KEY' });
    expect((await post(`${urls['node-a']}/storeraw`, { payload: 5 })).status).toBe(400);
  });
});
