// The npm etcd3 client library (pinned in package.json) against one
// cluster: its KV, lease, lock, election and watch APIs. Prints one line
// per step; tests/cmd/etcdctl_test.cc runs it against etcd 3.4 and
// against Quorate and expects the same lines. Lease ids and cluster ids
// differ by nature and are not printed.
//
//   node client.js HOST:PORT,HOST:PORT,...
'use strict';
const { Etcd3 } = require('etcd3');

const hosts = process.argv[2].split(',').map((h) => 'http://' + h);
const client = new Etcd3({ hosts });
const out = (...words) => console.log(words.join(' '));

// Waits for `fn` to report true; fails after 20 s.
async function until(what, fn) {
  for (const start = Date.now(); !(await fn());) {
    if (Date.now() - start > 20000) throw new Error('timed out: ' + what);
    await new Promise((r) => setImmediate(r));
  }
}

async function kv() {
  let r = await client.put('k/a').value('1').exec();
  out('put k/a revision', r.header.revision);
  await client.put('k/b').value('2');
  await client.put('k/c').value('3');
  out('get k/a', await client.get('k/a').string());
  out('get missing', await client.get('missing').string());
  out('prefix', JSON.stringify(await client.getAll().prefix('k/').strings()));
  out('prefix keys', JSON.stringify(await client.getAll().prefix('k/').keys()));
  out('count', await client.getAll().prefix('k/').count());
  out('limit 2 descending', JSON.stringify(
      await client.getAll().prefix('k/').sort('Key', 'Descend').limit(2).keys()));
  r = await client.put('k/a').value('10').getPrevious();
  out('previous of k/a', r.value.toString());
  const txn = await client.if('k/a', 'Value', '==', '10')
      .then(client.put('k/b').value('20'), client.get('k/c'))
      .else(client.put('k/b').value('never'))
      .commit();
  out('txn succeeded', txn.succeeded, 'revision', txn.header.revision);
  const failed = await client.if('k/a', 'Mod', '<', 2)
      .then(client.put('k/b').value('never'))
      .else(client.get('k/b'))
      .commit();
  out('txn succeeded', failed.succeeded, 'read',
      failed.responses[0].response_range.kvs[0].value.toString());
  const del = await client.delete().prefix('k/').exec();
  out('deleted', del.deleted);
  out('after delete', JSON.stringify(await client.getAll().prefix('k/').strings()));
}

async function leases() {
  const lease = client.lease(30, { autoKeepAlive: false });
  await lease.grant();
  await lease.put('l/a').value('leased');
  await lease.keepaliveOnce();
  out('leased value', await client.get('l/a').string());
  const ttl = await client.getAll().prefix('l/').count();
  out('leased keys', ttl);
  await lease.revoke();
  out('after revoke', await client.get('l/a').string());
}

async function locks() {
  const first = client.lock('mylock').ttl(10);
  await first.acquire();
  out('lock acquired');
  let refused = false;
  try {
    await client.lock('mylock').ttl(10).acquire();
  } catch (e) {
    refused = e.constructor.name;
  }
  out('second acquire refused', refused);
  await first.release();
  const again = client.lock('mylock').ttl(10);
  await again.acquire();
  out('acquired after release');
  await again.release();
}

async function elections() {
  const election = client.election('el', 10);
  const c1 = election.campaign('candidate-1');
  await new Promise((resolve, reject) => {
    c1.on('elected', resolve);
    c1.on('error', reject);
  });
  out('leader', await election.leader());
  // An observer from now on: the leader first, then every change.
  const observer = await election.observe();
  out('observer starts with', observer.leader());
  const seen = [];
  observer.on('change', (v) => seen.push(v));
  const c2 = election.campaign('candidate-2');
  let c2Elected = false;
  c2.on('elected', () => { c2Elected = true; });
  await until('the second candidate enters',
      async () => (await client.getAll().prefix('election/el/').count()) === 2);
  out('second elected while the first leads', c2Elected);
  await c1.proclaim('candidate-1b');
  await until('the observer sees the new value',
      async () => seen.includes('candidate-1b'));
  await c1.resign();
  await until('the second is elected', async () => c2Elected);
  out('leader', await election.leader());
  await until('the observer sees the second',
      async () => seen.includes('candidate-2'));
  out('observed', JSON.stringify(seen.filter((v) => v !== undefined)));
  await c2.resign();
  await observer.cancel();
}

async function watches() {
  const start = await client.put('w/x').value('0').exec();
  const events = [];
  const watcher = await client.watch().prefix('w/')
      .startRevision(String(start.header.revision)).withPreviousKV().create();
  watcher.on('put', (kv, prev) => events.push(
      ['put', kv.key.toString(), kv.value.toString(), kv.mod_revision,
       prev ? prev.value.toString() : '-'].join(' ')));
  watcher.on('delete', (kv) => events.push(
      ['delete', kv.key.toString(), kv.mod_revision].join(' ')));
  await client.put('w/x').value('1');
  await client.put('w/y').value('2');
  await client.delete().key('w/x');
  await until('four events', async () => events.length >= 4);
  for (const e of events) out('event', e);
  await watcher.cancel();
}

(async () => {
  await kv();
  await leases();
  await locks();
  await elections();
  await watches();
  client.close();
})().catch((e) => {
  console.log('error', e && e.message);
  process.exit(1);
});
