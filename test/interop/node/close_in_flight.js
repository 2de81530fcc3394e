// Publishes 2,000 small messages on one connection without waiting, so
// that the socket's write buffer fills up, then closes the connection at
// once. amqplib sends connection.close ahead of the publishes still queued
// behind it; the broker must answer with close-ok and let the client finish,
// so the close callback runs. Repeats ROUNDS times (default 5).
// Exit status 0 and "ok" on success; 1 with the reason otherwise.
'use strict';
const amqp = require('amqplib/callback_api');

const url = process.env.AMQP_URL;
const rounds = Number(process.env.ROUNDS || 5);
const closeWithin = Number(process.env.CLOSE_WITHIN_MS || 5000);

function fail(msg) {
  console.error(msg);
  process.exit(1);
}

function round(n, done) {
  amqp.connect(url, (err, conn) => {
    if (err) return fail(`round ${n}: connect: ${err.message}`);
    conn.on('error', (e) => fail(`round ${n}: connection error: ${e.message}`));
    conn.createChannel((err, ch) => {
      if (err) return fail(`round ${n}: channel: ${err.message}`);
      ch.on('error', (e) => fail(`round ${n}: channel error: ${e.message}`));
      ch.assertQueue('', { exclusive: true }, (err, q) => {
        if (err) return fail(`round ${n}: queue: ${err.message}`);
        const body = Buffer.alloc(32, 'x');
        let full = 0;
        for (let i = 0; i < 2000; i++) {
          if (!ch.sendToQueue(q.queue, body)) full++;
        }
        const timer = setTimeout(() => fail(`round ${n}: no close callback within ${closeWithin} ms (socket buffer full for ${full} of 2000 publishes)`), closeWithin);
        const start = Date.now();
        conn.close((err) => {
          clearTimeout(timer);
          if (err) return fail(`round ${n}: close: ${err.message}`);
          done(full, Date.now() - start);
        });
      });
    });
  });
}

let fullRounds = 0;
function next(n) {
  if (n > rounds) {
    console.log(`ok: ${rounds} rounds (publish reported a full buffer in ${fullRounds})`);
    process.exit(0);
  }
  round(n, (full, ms) => {
    if (full > 0) fullRounds++;
    next(n + 1);
  });
}
if (!url) fail('AMQP_URL is not set');
next(1);
