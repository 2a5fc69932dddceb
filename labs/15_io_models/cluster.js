// The lecture's cluster.js: a master forks two workers, and each serves HTTP
// on the same port. Changed for the lab: the port comes from PORT (0: the
// kernel picks one), each worker says its pid in its answer and once it
// listens, and two switches only the lab's tests use: WORKERS (how many to
// fork) and CLOSE_EACH (no keep-alive).
const cluster = require('cluster');
const http = require('http');

const port = Number(process.env.PORT || 3000);
const workers = Number(process.env.WORKERS || 2);

if (cluster.isPrimary ?? cluster.isMaster) {
  console.log(`master ${process.pid} is online`);
  for (let i = 0; i < workers; i++) {
    cluster.fork();
  }
  cluster.on('exit', (worker) => {
    console.log(`worker ${worker.process.pid} died`);
  });
} else {
  const server = http.createServer((req, res) => {
    if (process.env.CLOSE_EACH) {
      res.setHeader('Connection', 'close');
    }
    res.end(`worker ${process.pid} hello world\n`);
  });
  server.listen(port, '127.0.0.1', () => {
    console.log(`worker ${process.pid} listening on ${server.address().port}`);
  });
}
