/*
** A small HTTP/1.1 server for the benchmark: serves pre-rendered pages of
** GET /v1/workflows/{id}/runs from memory, with the same per-request latency
** injection as sandbox/server.py (--latency-ms).
**
** Why it exists: the Python sandbox spends ~2 ms of CPU on every page (it builds
** 100 runs, encodes and gzips them), and on this 2-core machine that CPU is taken
** from the client being measured. At 0 ms of latency every walk would measure the
** sandbox, not the client. This server answers a page with one writev() of bytes
** that sandbox/server.py produced earlier (bench/lib.lua fetched them), so
** the bodies are the sandbox's own, byte for byte, gzip included.
**
**   static_server --pages DIR [--port 0] [--latency-ms N] [--token T] [--identity]
**                 [--throttle-every N]
**
** --identity never compresses, whatever Accept-Encoding says: it shows how much of
** a client's time goes to inflating gzip (pure cost on loopback).
** --throttle-every N answers every Nth page request (1 in N, counted over the
** server's life) with 429 Too Many Requests and `Retry-After: 1`, after the same
** latency: a server pushing back, for the prefetch window's benchmark.
**
** DIR/<workflow>/<offset>.json is a page as identity JSON, <offset>.json.gz the
** same page as the sandbox gzipped it (limit=100, offsets 0, 100, 200, ...).
** Those pages are served as they are. Any other offset (a walk whose pages
** overlap by a run asks for 99, 198, ...) or limit up to 100 is cut from the same
** runs and rendered the way the sandbox renders a page (sorted keys, no spaces,
** gzip level 6), once: rendered pages are kept, and the ones at multiples of 99
** are rendered before the server says it listens, so no walk pays for them.
** Prints "listening http://127.0.0.1:PORT" once ready; exits on SIGTERM/SIGINT
** and when its parent dies. GET /_bench/stats (no token) answers
** {"connections":C,"requests":R,"ended":E,"unanswered":U,"ended_unanswered":EU,
** "throttled":T}: connections that carried at least one API request; API
** requests; page requests whose answer has hasMore false (a walk needs one, the
** others asked past its last page); requests whose connection the client closed
** before their answer was all written (cancelled), and how many of those would
** have had hasMore false; requests answered 429 by --throttle-every.
**
** Single-threaded, epoll, non-blocking. Latency: a request is parsed, its answer
** chosen, and then it waits latency-ms before the answer is written; as every
** request waits the same time, the waiting ones form a FIFO ordered by due time,
** driven by one timerfd (sub-millisecond precision, unlike epoll_wait's timeout).
*/
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define PAGE_LIMIT 100          /* the only page size pre-rendered */
#define MAX_WORKFLOWS 8
#define IN_SIZE 8192            /* a request head larger than this is refused */
#define HEAD_SIZE 512
#define SMALL_BODY 512          /* error envelopes and the empty page past the end */
#define MAX_FDS 65536

struct page {
  char *plain, *gz;
  size_t plain_len, gz_len;
};

struct item {
  const char *json;
  size_t len;
};

struct workflow {
  char name[64];
  struct page *pages;           /* as pre-rendered: limit=100, offsets 0, 100, ... */
  size_t npages;
  struct item *items;           /* every run, cut out of the pages */
  size_t nitems;
  struct page **rendered;       /* limit=100 pages at other offsets, by offset */
};

enum state { READING, WAITING, WRITING };

struct conn {
  int fd;
  unsigned gen;                 /* tells a queued entry whether its conn still lives */
  enum state state;
  int close_after, counted;
  int ends;                     /* the request being answered gets hasMore false */
  char in[IN_SIZE];
  size_t in_len;
  char head[HEAD_SIZE];
  char small[SMALL_BODY];
  const char *body;
  size_t head_len, body_len, sent;
  struct page own;              /* a page rendered for this request alone */
};

struct pending {
  int fd;
  unsigned gen;
  uint64_t due_ns;
};

static struct workflow workflows[MAX_WORKFLOWS];
static size_t nworkflows;
static struct conn *conns[MAX_FDS];
static struct pending *queue;   /* ring buffer, MAX_FDS entries: one per connection at most */
static size_t q_head, q_len;
static int epfd, timerfd_, listenfd;
static uint64_t latency_ns;
static const char *token = "sandbox-token";
static int identity_only;
static unsigned long throttle_every;
static unsigned long stat_connections, stat_requests, request_counter;
static unsigned long stat_ended, stat_unanswered, stat_ended_unanswered, stat_throttled;
static unsigned long page_requests;
static volatile sig_atomic_t stopping;

static void die(const char *what) {
  perror(what);
  exit(1);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char *read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  struct stat st;
  char *data;
  if (!f) return NULL;
  if (fstat(fileno(f), &st) != 0) die("fstat");
  data = malloc((size_t)st.st_size + 1);
  if (!data) die("malloc");
  if (fread(data, 1, (size_t)st.st_size, f) != (size_t)st.st_size) die(path);
  fclose(f);
  *len = (size_t)st.st_size;
  return data;
}

/* Cuts the runs out of a page's identity JSON: the objects of data.items. */
static void cut_items(struct workflow *w, const struct page *p, size_t *cap) {
  static const char key[] = "\"items\":[";
  const char *s = memmem(p->plain, p->plain_len, key, sizeof key - 1);
  const char *end = p->plain + p->plain_len;
  if (!s) {
    fprintf(stderr, "static_server: a page of %s has no items\n", w->name);
    exit(1);
  }
  s += sizeof key - 1;
  while (s < end && *s != ']') {
    const char *start = s;
    int depth = 0, in_string = 0;
    if (*s == ',' || *s == ' ') {
      s++;
      continue;
    }
    for (; s < end; s++) {
      if (in_string) {
        if (*s == '\\') s++;
        else if (*s == '"') in_string = 0;
      } else if (*s == '"') {
        in_string = 1;
      } else if (*s == '{' || *s == '[') {
        depth++;
      } else if (*s == '}' || *s == ']') {
        if (--depth == 0) break;
      }
    }
    if (s == end) {
      fprintf(stderr, "static_server: a page of %s does not parse\n", w->name);
      exit(1);
    }
    s++;
    if (w->nitems == *cap) {
      *cap = *cap ? *cap * 2 : 4096;
      w->items = realloc(w->items, *cap * sizeof *w->items);
      if (!w->items) die("realloc");
    }
    w->items[w->nitems].json = start;
    w->items[w->nitems++].len = (size_t)(s - start);
  }
}

/* gzip as the sandbox sends it (level 6); returns the length. */
static size_t gzip_of(const char *in, size_t len, char **out) {
  z_stream z;
  size_t cap;
  memset(&z, 0, sizeof z);
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) die("deflate");
  cap = deflateBound(&z, (uLong)len);
  *out = malloc(cap);
  if (!*out) die("malloc");
  z.next_in = (Bytef *)in;
  z.avail_in = (uInt)len;
  z.next_out = (Bytef *)*out;
  z.avail_out = (uInt)cap;
  if (deflate(&z, Z_FINISH) != Z_STREAM_END) die("deflate");
  len = z.total_out;
  deflateEnd(&z);
  return len;
}

/* The page of `limit` runs from `offset` (< nitems), rendered as the sandbox would. */
static void render_page(const struct workflow *w, size_t offset, size_t limit, struct page *p) {
  size_t last = offset + limit < w->nitems ? offset + limit : w->nitems, cap = 256, n;
  char tail[160];
  char *b;
  for (size_t i = offset; i < last; i++) cap += w->items[i].len + 1;
  b = malloc(cap);
  if (!b) die("malloc");
  n = (size_t)sprintf(b, "{\"code\":200,\"data\":{\"hasMore\":%s,\"items\":[",
                      last < w->nitems ? "true" : "false");
  for (size_t i = offset; i < last; i++) {
    if (i > offset) b[n++] = ',';
    memcpy(b + n, w->items[i].json, w->items[i].len);
    n += w->items[i].len;
  }
  snprintf(tail, sizeof tail, "],\"limit\":%zu,\"offset\":%zu},\"message\":\"success\","
           "\"requestId\":\"req_static_o%zu_l%zu\"}", limit, offset, offset, limit);
  memcpy(b + n, tail, strlen(tail));
  n += strlen(tail);
  p->plain = b;
  p->plain_len = n;
  p->gz_len = gzip_of(b, n, &p->gz);
}

/* A limit=100 page at an offset that was not pre-rendered: rendered once, then kept. */
static const struct page *rendered_page(struct workflow *w, size_t offset) {
  if (!w->rendered) {
    w->rendered = calloc(w->nitems, sizeof *w->rendered);
    if (!w->rendered) die("calloc");
  }
  if (!w->rendered[offset]) {
    w->rendered[offset] = malloc(sizeof **w->rendered);
    if (!w->rendered[offset]) die("malloc");
    render_page(w, offset, PAGE_LIMIT, w->rendered[offset]);
  }
  return w->rendered[offset];
}

static void free_own(struct conn *c) {
  free(c->own.plain);
  free(c->own.gz);
  memset(&c->own, 0, sizeof c->own);
}

/* Loads DIR/<workflow>/<offset>.json(.gz) for offsets 0, 100, ... until one is missing. */
static void load_pages(const char *dir) {
  DIR *d = opendir(dir);
  struct dirent *e;
  char path[4096];
  if (!d) die(dir);
  while ((e = readdir(d)) != NULL) {
    struct workflow *w;
    size_t cap = 0;
    if (e->d_name[0] == '.' || strlen(e->d_name) >= sizeof w->name) continue;
    if (nworkflows == MAX_WORKFLOWS) break;
    w = &workflows[nworkflows];
    strcpy(w->name, e->d_name);
    for (;;) {
      struct page p;
      snprintf(path, sizeof path, "%s/%s/%zu.json", dir, w->name, w->npages * PAGE_LIMIT);
      p.plain = read_file(path, &p.plain_len);
      if (!p.plain) break;
      snprintf(path, sizeof path, "%s/%s/%zu.json.gz", dir, w->name, w->npages * PAGE_LIMIT);
      p.gz = read_file(path, &p.gz_len);
      if (!p.gz) {
        fprintf(stderr, "static_server: %s is missing\n", path);
        exit(1);
      }
      if (w->npages == cap) {
        cap = cap ? cap * 2 : 256;
        w->pages = realloc(w->pages, cap * sizeof *w->pages);
        if (!w->pages) die("realloc");
      }
      w->pages[w->npages++] = p;
    }
    if (w->npages) {
      size_t items_cap = 0;
      for (size_t i = 0; i < w->npages; i++) cut_items(w, &w->pages[i], &items_cap);
      nworkflows++;
    }
  }
  closedir(d);
  if (!nworkflows) {
    fprintf(stderr, "static_server: no pages under %s\n", dir);
    exit(1);
  }
}

static void epoll_set(struct conn *c, uint32_t events, int op) {
  struct epoll_event ev;
  ev.events = events;
  ev.data.fd = c->fd;
  if (epoll_ctl(epfd, op, c->fd, &ev) != 0) die("epoll_ctl");
}

static void close_conn(struct conn *c) {
  /* a request still waiting for its answer, or half written: the client gave up */
  if (c->state == WAITING || (c->state == WRITING && c->sent < c->head_len + c->body_len)) {
    stat_unanswered++;
    if (c->ends) stat_ended_unanswered++;
  }
  free_own(c);
  conns[c->fd] = NULL;
  close(c->fd);                 /* also removes it from the epoll set */
  free(c);
}

/* ---------------------------------------------------------------- answers */

static int header_is(const char *line, size_t len, const char *name) {
  size_t n = strlen(name);
  return len > n && line[n] == ':' && strncasecmp(line, name, n) == 0;
}

static const char *skip_spaces(const char *s, const char *end) {
  while (s < end && (*s == ' ' || *s == '\t')) s++;
  return s;
}

/* Reads `name=` from a query string into *value; returns 0 when absent, -1 when malformed. */
static int query_number(const char *q, const char *qend, const char *name, unsigned long *value) {
  size_t n = strlen(name);
  while (q < qend) {
    const char *amp = memchr(q, '&', (size_t)(qend - q));
    const char *end = amp ? amp : qend;
    if ((size_t)(end - q) > n && strncmp(q, name, n) == 0 && q[n] == '=') {
      const char *s = q + n + 1;
      unsigned long v = 0;
      if (s == end || end - s > 12) return -1;
      for (; s < end; s++) {
        if (*s < '0' || *s > '9') return -1;
        v = v * 10 + (unsigned long)(*s - '0');
      }
      *value = v;
      return 1;
    }
    q = end + (amp != NULL);
  }
  return 0;
}

static int has_query_key(const char *q, const char *qend, const char *name) {
  unsigned long ignored;
  return query_number(q, qend, name, &ignored) != 0;
}

static void answer_envelope(struct conn *c, int *status, int code, const char *message,
                            const char *request_id) {
  int n = snprintf(c->small, sizeof c->small,
                   "{\"code\":%d,\"message\":\"%s\",\"requestId\":\"%s\"}",
                   code, message, request_id);
  *status = code;
  c->body = c->small;
  c->body_len = (size_t)n;
}

/*
** Chooses the answer to one request head (request line and headers, without the
** blank line) and renders the response head; the body stays where it is.
*/
static void answer(struct conn *c, const char *req, size_t len) {
  const char *end = req + len, *line_end, *sp1, *sp2, *target, *qmark, *path_end;
  const char *reason = "OK", *extra = "";
  char request_id[32];
  int status = 200, gzip_ok = 0, auth_ok = 0, http10 = 0, keep_alive = 0, conn_close = 0;
  int gzipped = 0, api = 0;

  free_own(c);                  /* the previous answer's, if it was rendered for it */
  c->ends = 0;
  snprintf(request_id, sizeof request_id, "req_static_%08lx", ++request_counter);
  line_end = memmem(req, len, "\r\n", 2);
  if (!line_end) line_end = end;
  sp1 = memchr(req, ' ', (size_t)(line_end - req));
  sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(line_end - sp1 - 1)) : NULL;
  if (!sp1 || !sp2) {
    c->close_after = 1;
    answer_envelope(c, &status, 400, "bad request", request_id);
    goto render;
  }
  http10 = (size_t)(line_end - sp2 - 1) == 8 && strncmp(sp2 + 1, "HTTP/1.0", 8) == 0;

  /* headers */
  for (const char *h = line_end + 2; h < end;) {
    const char *e = memmem(h, (size_t)(end - h), "\r\n", 2);
    const char *v;
    size_t hl;
    if (!e) e = end;
    hl = (size_t)(e - h);
    if (header_is(h, hl, "authorization")) {
      size_t tl = strlen(token);
      v = skip_spaces(h + 14, e);
      auth_ok = (size_t)(e - v) == 7 + tl && strncasecmp(v, "Bearer ", 7) == 0 &&
                memcmp(v + 7, token, tl) == 0;
    } else if (header_is(h, hl, "accept-encoding")) {
      gzip_ok = memmem(h + 16, hl - 16, "gzip", 4) != NULL;
    } else if (header_is(h, hl, "connection")) {
      v = skip_spaces(h + 11, e);
      conn_close = memmem(v, (size_t)(e - v), "close", 5) != NULL;
      keep_alive = memmem(v, (size_t)(e - v), "eep-alive", 9) != NULL;
    }
    h = e + 2;
  }
  if (conn_close || (http10 && !keep_alive)) c->close_after = 1;

  target = sp1 + 1;
  qmark = memchr(target, '?', (size_t)(sp2 - target));
  path_end = qmark ? qmark : sp2;

  if ((size_t)(path_end - target) == 13 && strncmp(target, "/_bench/stats", 13) == 0) {
    int n = snprintf(c->small, sizeof c->small,
                     "{\"connections\":%lu,\"requests\":%lu,\"ended\":%lu,\"unanswered\":%lu,"
                     "\"ended_unanswered\":%lu,\"throttled\":%lu}", stat_connections,
                     stat_requests, stat_ended, stat_unanswered, stat_ended_unanswered,
                     stat_throttled);
    c->body = c->small;
    c->body_len = (size_t)n;
    goto render;
  }

  api = 1;
  stat_requests++;
  if (!c->counted) {
    c->counted = 1;
    stat_connections++;
  }
  if ((size_t)(sp1 - req) != 3 || strncmp(req, "GET", 3) != 0) {
    answer_envelope(c, &status, 405, "method not allowed", request_id);
    c->close_after = 1;         /* any request body was not read */
    goto render;
  }
  {
    static const char prefix[] = "/v1/workflows/", suffix[] = "/runs";
    size_t plen = sizeof prefix - 1, slen = sizeof suffix - 1;
    size_t tlen = (size_t)(path_end - target);
    struct workflow *w = NULL;
    const char *qs = qmark ? qmark + 1 : sp2;
    unsigned long limit = 20, offset = 0;
    int has_limit, has_offset;

    if (tlen > plen + slen && strncmp(target, prefix, plen) == 0 &&
        strncmp(path_end - slen, suffix, slen) == 0) {
      size_t nlen = tlen - plen - slen;
      for (size_t i = 0; i < nworkflows; i++)
        if (strlen(workflows[i].name) == nlen &&
            strncmp(workflows[i].name, target + plen, nlen) == 0)
          w = &workflows[i];
    }
    if (!auth_ok) {
      answer_envelope(c, &status, 401, "invalid bearer token", request_id);
      extra = "WWW-Authenticate: Bearer\r\n";
      goto render;
    }
    if (!w) {
      answer_envelope(c, &status, 404, "workflow not found", request_id);
      goto render;
    }
    has_limit = query_number(qs, sp2, "limit", &limit);
    has_offset = query_number(qs, sp2, "offset", &offset);
    if (has_limit <= 0 || has_offset < 0 || limit < 1 || limit > PAGE_LIMIT ||
        has_query_key(qs, sp2, "status")) {
      answer_envelope(c, &status, 400, "only pages of limit=1..100 without a status filter "
                      "are served", request_id);
      goto render;
    }
    if (throttle_every && ++page_requests % throttle_every == 0) {
      stat_throttled++;
      answer_envelope(c, &status, 429, "too many requests", request_id);
      extra = "Retry-After: 1\r\n";
      goto render;
    }
    if (offset + limit >= w->nitems) {        /* hasMore false */
      stat_ended++;
      c->ends = 1;
    }
    if (offset < w->nitems) {
      const struct page *p;
      if (limit == PAGE_LIMIT && offset % PAGE_LIMIT == 0) {
        p = &w->pages[offset / PAGE_LIMIT];   /* the sandbox's own bytes */
      } else if (limit == PAGE_LIMIT) {
        p = rendered_page(w, offset);
      } else {
        render_page(w, offset, limit, &c->own);
        p = &c->own;
      }
      if (gzip_ok && !identity_only) {
        c->body = p->gz;
        c->body_len = p->gz_len;
        gzipped = 1;
      } else {
        c->body = p->plain;
        c->body_len = p->plain_len;
      }
    } else {                    /* past the end: an empty last page, as the sandbox answers */
      int n = snprintf(c->small, sizeof c->small,
                       "{\"code\":200,\"data\":{\"hasMore\":false,\"items\":[],\"limit\":%lu,"
                       "\"offset\":%lu},\"message\":\"success\",\"requestId\":\"%s\"}",
                       limit, offset, request_id);
      c->body = c->small;
      c->body_len = (size_t)n;
    }
  }

render:
  switch (status) {
    case 400: reason = "Bad Request"; break;
    case 401: reason = "Unauthorized"; break;
    case 404: reason = "Not Found"; break;
    case 405: reason = "Method Not Allowed"; break;
    case 429: reason = "Too Many Requests"; break;
    default: break;
  }
  c->head_len = (size_t)snprintf(
      c->head, sizeof c->head,
      "HTTP/1.1 %d %s\r\nServer: workflows-bench-static\r\nContent-Type: application/json\r\n"
      "Content-Length: %zu\r\nX-Request-Id: %s\r\nVary: Accept-Encoding\r\n%s%s%s\r\n",
      status, reason, c->body_len, request_id, gzipped ? "Content-Encoding: gzip\r\n" : "",
      extra, c->close_after ? "Connection: close\r\n" : "");
  c->sent = 0;
  /* The stats endpoint is the harness's, not a request to delay. */
  c->state = (api && latency_ns) ? WAITING : WRITING;
}

/* ---------------------------------------------------------------- I/O */

static void arm_timer(void) {
  struct itimerspec its;
  memset(&its, 0, sizeof its);
  if (q_len) {
    uint64_t due = queue[q_head].due_ns;
    its.it_value.tv_sec = (time_t)(due / 1000000000u);
    its.it_value.tv_nsec = (long)(due % 1000000000u);
    if (!its.it_value.tv_sec && !its.it_value.tv_nsec) its.it_value.tv_nsec = 1;
  }
  if (timerfd_settime(timerfd_, TFD_TIMER_ABSTIME, &its, NULL) != 0) die("timerfd_settime");
}

static void process(struct conn *c);

/* Writes what is left of the response; returns 0 if the connection was closed. */
static int flush_out(struct conn *c) {
  while (c->sent < c->head_len + c->body_len) {
    struct iovec iov[2];
    int n = 0;
    ssize_t w;
    if (c->sent < c->head_len) {
      iov[n].iov_base = c->head + c->sent;
      iov[n++].iov_len = c->head_len - c->sent;
      iov[n].iov_base = (void *)c->body;
      iov[n++].iov_len = c->body_len;
    } else {
      iov[n].iov_base = (void *)(c->body + (c->sent - c->head_len));
      iov[n++].iov_len = c->body_len - (c->sent - c->head_len);
    }
    w = writev(c->fd, iov, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) {
        epoll_set(c, EPOLLOUT, EPOLL_CTL_MOD);
        return 1;
      }
      close_conn(c);
      return 0;
    }
    c->sent += (size_t)w;
  }
  if (c->close_after) {
    shutdown(c->fd, SHUT_WR);
    close_conn(c);
    return 0;
  }
  c->state = READING;
  epoll_set(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_MOD);
  return 1;
}

/* Answers every complete request in the input buffer, one at a time. */
static void process(struct conn *c) {
  while (c->state == READING) {
    char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    size_t used;
    if (!end) {
      if (c->in_len == sizeof c->in) close_conn(c);  /* a head this large is not ours */
      return;
    }
    answer(c, c->in, (size_t)(end - c->in));
    used = (size_t)(end - c->in) + 4;
    memmove(c->in, c->in + used, c->in_len - used);
    c->in_len -= used;
    if (c->state == WAITING) {
      struct pending *p = &queue[(q_head + q_len++) % MAX_FDS];
      p->fd = c->fd;
      p->gen = c->gen;
      p->due_ns = now_ns() + latency_ns;
      epoll_set(c, EPOLLRDHUP, EPOLL_CTL_MOD);       /* no reading while it waits */
      if (q_len == 1) arm_timer();
      return;
    }
    if (!flush_out(c)) return;
  }
}

static void on_readable(struct conn *c) {
  for (;;) {
    ssize_t r;
    if (c->in_len == sizeof c->in) break;
    r = read(c->fd, c->in + c->in_len, sizeof c->in - c->in_len);
    if (r > 0) {
      c->in_len += (size_t)r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && errno == EAGAIN) break;
    close_conn(c);              /* EOF or error */
    return;
  }
  process(c);
}

static void on_timer(void) {
  uint64_t expirations, now = now_ns();
  if (read(timerfd_, &expirations, sizeof expirations) < 0 && errno != EAGAIN) die("timerfd");
  while (q_len && queue[q_head].due_ns <= now) {
    struct pending p = queue[q_head];
    struct conn *c = conns[p.fd];
    q_head = (q_head + 1) % MAX_FDS;
    q_len--;
    if (c && c->gen == p.gen && c->state == WAITING) {
      c->state = WRITING;
      if (flush_out(c)) process(c);
    }
  }
  arm_timer();
}

static void on_accept(void) {
  static unsigned gen;
  for (;;) {
    int one = 1, fd = accept4(listenfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    struct conn *c;
    if (fd < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == ECONNABORTED) return;
      perror("accept4");
      return;
    }
    if (fd >= MAX_FDS) {
      close(fd);
      continue;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    c = calloc(1, sizeof *c);
    if (!c) die("calloc");
    c->fd = fd;
    c->gen = ++gen;
    c->state = READING;
    conns[fd] = c;
    epoll_set(c, EPOLLIN | EPOLLRDHUP, EPOLL_CTL_ADD);
  }
}

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

int main(int argc, char **argv) {
  const char *dir = NULL;
  int port = 0, one = 1;
  struct sockaddr_in addr;
  socklen_t alen = sizeof addr;
  struct sigaction sa;
  struct epoll_event ev;

  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--pages") && i + 1 < argc) dir = argv[++i];
    else if (!strcmp(argv[i], "--port") && i + 1 < argc) port = atoi(argv[++i]);
    else if (!strcmp(argv[i], "--latency-ms") && i + 1 < argc)
      latency_ns = (uint64_t)strtoull(argv[++i], NULL, 10) * 1000000u;
    else if (!strcmp(argv[i], "--token") && i + 1 < argc) token = argv[++i];
    else if (!strcmp(argv[i], "--identity")) identity_only = 1;
    else if (!strcmp(argv[i], "--throttle-every") && i + 1 < argc)
      throttle_every = strtoul(argv[++i], NULL, 10);
    else {
      fprintf(stderr, "usage: %s --pages DIR [--port N] [--latency-ms N] [--token T] "
              "[--identity] [--throttle-every N]\n", argv[0]);
      return 2;
    }
  }
  if (!dir) {
    fprintf(stderr, "static_server: --pages DIR is required\n");
    return 2;
  }
  prctl(PR_SET_PDEATHSIG, SIGTERM);     /* never outlive the script that started us */
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;            /* no SA_RESTART: epoll_wait returns EINTR */
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGPIPE, SIG_IGN);

  load_pages(dir);
  /* the pages of a walk whose pages overlap by one run, before any walk asks */
  for (size_t i = 0; i < nworkflows; i++)
    for (size_t offset = PAGE_LIMIT - 1; offset < workflows[i].nitems; offset += PAGE_LIMIT - 1)
      if (offset % PAGE_LIMIT) rendered_page(&workflows[i], offset);
  queue = calloc(MAX_FDS, sizeof *queue);
  if (!queue) die("calloc");

  listenfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listenfd < 0) die("socket");
  setsockopt(listenfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);        /* loopback only */
  addr.sin_port = htons((uint16_t)port);
  if (bind(listenfd, (struct sockaddr *)&addr, sizeof addr) != 0) die("bind");
  if (listen(listenfd, 1024) != 0) die("listen");
  if (getsockname(listenfd, (struct sockaddr *)&addr, &alen) != 0) die("getsockname");

  epfd = epoll_create1(EPOLL_CLOEXEC);
  timerfd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (epfd < 0 || timerfd_ < 0) die("epoll/timerfd");
  ev.events = EPOLLIN;
  ev.data.fd = listenfd;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, listenfd, &ev) != 0) die("epoll_ctl");
  ev.data.fd = timerfd_;
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, timerfd_, &ev) != 0) die("epoll_ctl");

  printf("listening http://127.0.0.1:%d\n", ntohs(addr.sin_port));
  fflush(stdout);

  while (!stopping) {
    struct epoll_event events[256];
    int n = epoll_wait(epfd, events, 256, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      int fd = events[i].data.fd;
      struct conn *c;
      if (fd == listenfd) {
        on_accept();
        continue;
      }
      if (fd == timerfd_) {
        on_timer();
        continue;
      }
      c = conns[fd];
      if (!c) continue;
      if (events[i].events & (EPOLLERR | EPOLLHUP)) {
        close_conn(c);
      } else if (c->state == WRITING && (events[i].events & EPOLLOUT)) {
        if (flush_out(c)) process(c);
      } else if (c->state == READING && (events[i].events & (EPOLLIN | EPOLLRDHUP))) {
        on_readable(c);
      } else if (c->state == WAITING && (events[i].events & EPOLLRDHUP)) {
        close_conn(c);          /* the client gave up (cancelled) while its answer waited */
      }
    }
  }
  return 0;
}
