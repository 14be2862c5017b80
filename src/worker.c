/*
** Layer 2 (transfer thread) -- may call: nothing
**
** The transfer thread of a poll-mode session: it moves the bytes -- libcurl's sends,
** receives, TLS and decompression -- while the Lua thread decodes the pages already
** here and hands out their runs. On a fast link a walk's time is its CPU time, and
** that work is about a sixth of it.
**
** Ownership: once the thread runs, it alone calls libcurl on the multi handle and on
** the easy handles added to it. Every easy handle the Lua thread hands over is in
** exactly one of three places -- to_add (handed over), attached (in the multi handle),
** finished (taken out again, its code recorded) -- so arrays as large as the number
** of handles held never need to grow on the thread. The Lua thread takes the multi
** handle back for a moment (wf_worker_borrow) only to take out a transfer that has
** not finished, and for good when the session closes (wf_worker_stop).
**
** The thread never calls Lua, allocates nothing, and blocks every signal: a host's
** handlers keep running on the threads they expect. For each handle that ended well
** it calls `ended_well` before taking it out: the session counts a page's body there
** for its decoding (wf_transfer_ended_on_thread).
*/
#define _POSIX_C_SOURCE 200809L           /* pthread_condattr_setclock, clock_gettime */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "worker.h"

/* How long the thread waits in curl_multi_poll when libcurl names no sooner time. */
#define IDLE_POLL_MS 1000

int wf_worker_init(wf_worker *w, CURLM *multi, void (*ended_well)(CURL *easy)) {
  pthread_condattr_t monotonic;
  memset(w, 0, sizeof *w);
  w->multi = multi;
  w->ended_well = ended_well;
  if (pthread_mutex_init(&w->lock, NULL) != 0) return 0;
  if (pthread_condattr_init(&monotonic) != 0) goto no_attr;
  /* The Lua thread's waits are timed: a wall clock set back must not stretch them. */
  if (pthread_condattr_setclock(&monotonic, CLOCK_MONOTONIC) != 0) goto no_changed;
  if (pthread_cond_init(&w->changed, &monotonic) != 0) goto no_changed;
  if (pthread_cond_init(&w->work, NULL) != 0) goto no_work;
  pthread_condattr_destroy(&monotonic);
  return 1;
no_work:
  pthread_cond_destroy(&w->changed);
no_changed:
  pthread_condattr_destroy(&monotonic);
no_attr:
  pthread_mutex_destroy(&w->lock);
  return 0;
}

/* Moves what the thread took out of the multi handle to `finished`. */
static void publish(wf_worker *w, const wf_finished *done, size_t count) {
  if (count == 0) return;
  pthread_mutex_lock(&w->lock);
  memcpy(w->finished + w->finished_count, done, count * sizeof *done);
  w->finished_count += count;
  w->attached -= count;
  pthread_cond_broadcast(&w->changed);
  pthread_mutex_unlock(&w->lock);
}

/* Called with the lock held; returns with it held. */
static void add_handed_over(wf_worker *w) {
  size_t i;
  for (i = 0; i < w->to_add_count; i++) {
    CURLMcode mrc = curl_multi_add_handle(w->multi, w->to_add[i]);
    if (mrc == CURLM_OK) {
      w->attached++;
    } else {
      /* never in the multi handle: it finishes at once, failed */
      w->finished[w->finished_count].easy = w->to_add[i];
      w->finished[w->finished_count].code =
          mrc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_FAILED_INIT;
      w->finished_count++;
      pthread_cond_broadcast(&w->changed);
    }
  }
  w->to_add_count = 0;
}

static void fail(wf_worker *w, CURLMcode mrc) {
  pthread_mutex_lock(&w->lock);
  w->polling = 0;
  w->failure = mrc;
  pthread_cond_broadcast(&w->changed);
}

static void *run(void *arg) {
  wf_worker *w = (wf_worker *)arg;
  pthread_mutex_lock(&w->lock);
  while (!w->stopping) {
    wf_finished done[16];
    size_t count = 0;
    int still_running = 0;
    CURLMsg *msg;
    CURLMcode mrc;
    if (w->borrow_wanted) {
      w->parked = 1;
      pthread_cond_broadcast(&w->changed);
      while (w->borrow_wanted && !w->stopping) pthread_cond_wait(&w->work, &w->lock);
      w->parked = 0;
      continue;
    }
    add_handed_over(w);
    if (w->attached == 0) {
      /* nothing to move: sleep until handed something (curl_multi_wakeup is for polls) */
      pthread_cond_wait(&w->work, &w->lock);
      continue;
    }
    w->polling = 1;
    pthread_mutex_unlock(&w->lock);
    mrc = curl_multi_perform(w->multi, &still_running);
    if (mrc != CURLM_OK) {
      fail(w, mrc);
      break;
    }
    while ((msg = curl_multi_info_read(w->multi, &still_running)) != NULL) {
      if (msg->msg != CURLMSG_DONE) continue;
      done[count].easy = msg->easy_handle;
      done[count].code = msg->data.result;
      if (done[count].code == CURLE_OK && w->ended_well != NULL) w->ended_well(done[count].easy);
      /* msg is freed by the removal; a handle that cannot be taken out stops the thread */
      mrc = curl_multi_remove_handle(w->multi, done[count].easy);
      if (mrc != CURLM_OK) break;
      if (++count == sizeof done / sizeof done[0]) {
        publish(w, done, count);
        count = 0;
      }
    }
    publish(w, done, count);
    if (mrc != CURLM_OK) {
      fail(w, mrc);
      break;
    }
    mrc = curl_multi_poll(w->multi, NULL, 0, IDLE_POLL_MS, NULL);
    if (mrc != CURLM_OK) {
      fail(w, mrc);
      break;
    }
    pthread_mutex_lock(&w->lock);
    w->polling = 0;
  }
  pthread_mutex_unlock(&w->lock);
  return NULL;
}

/*
** With the lock held: gets the thread to look at what changed. Outside libcurl it
** waits on `work`; inside, a wakeup makes its poll return, or the next one if it is
** not polling yet.
*/
static void wake(wf_worker *w) {
  /* Without a wakeup pair (a libcurl built without socketpair), the poll's timeout does. */
  if (w->polling) (void)curl_multi_wakeup(w->multi);
  else pthread_cond_signal(&w->work);
}

/* Starts the thread, with every signal blocked on it; 0 when it cannot be made. */
int wf_worker_start(wf_worker *w) {
  sigset_t all, before;
  int rc;
  if (w->started) return 1;
  sigfillset(&all);
  if (pthread_sigmask(SIG_SETMASK, &all, &before) != 0) return 0;
  rc = pthread_create(&w->thread, NULL, run, w);
  pthread_sigmask(SIG_SETMASK, &before, NULL);
  if (rc != 0) return 0;
  w->started = 1;
  w->pid = getpid();
  return 1;
}

/*
** True in a child made by fork after the thread started: the thread is not there, and
** its lock may have been held when the memory was copied. Nothing of the worker may
** be touched then, not even to free it.
*/
int wf_worker_foreign(const wf_worker *w) {
  return w->started && w->pid != getpid();
}

/* Room for `handles` handles in all; 0 when out of memory. Lua thread only. */
int wf_worker_reserve(wf_worker *w, size_t handles) {
  CURL **to_add;
  wf_finished *finished;
  size_t capacity;
  int ok = 1;
  if (handles <= w->capacity) return 1;
  capacity = w->capacity ? w->capacity : 8;
  while (capacity < handles) capacity *= 2;
  pthread_mutex_lock(&w->lock);
  to_add = realloc(w->to_add, capacity * sizeof *to_add);
  if (to_add != NULL) w->to_add = to_add;
  finished = realloc(w->finished, capacity * sizeof *finished);
  if (finished != NULL) w->finished = finished;
  if (to_add != NULL && finished != NULL) w->capacity = capacity;
  else ok = 0;
  pthread_mutex_unlock(&w->lock);
  return ok;
}

/* Hands an easy handle, set up, to the thread; room for it was reserved. */
void wf_worker_add(wf_worker *w, CURL *easy) {
  pthread_mutex_lock(&w->lock);
  w->to_add[w->to_add_count++] = easy;
  wake(w);
  pthread_mutex_unlock(&w->lock);
}

/* Copies out (and forgets) up to `room` finished handles; returns how many. */
size_t wf_worker_take_finished(wf_worker *w, wf_finished *into, size_t room) {
  size_t count;
  pthread_mutex_lock(&w->lock);
  count = w->finished_count < room ? w->finished_count : room;
  memcpy(into, w->finished, count * sizeof *into);
  memmove(w->finished, w->finished + count, (w->finished_count - count) * sizeof *into);
  w->finished_count -= count;
  pthread_mutex_unlock(&w->lock);
  return count;
}

/* A libcurl failure that stopped the thread, or CURLM_OK. */
CURLMcode wf_worker_failure(wf_worker *w) {
  CURLMcode mrc;
  pthread_mutex_lock(&w->lock);
  mrc = w->failure;
  pthread_mutex_unlock(&w->lock);
  return mrc;
}

/*
** Waits up to `seconds` for a handle to finish (or the thread to fail); returns at
** once when one has, or when the thread holds none.
*/
void wf_worker_wait(wf_worker *w, double seconds) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  if (seconds > 1e6) seconds = 1e6;
  until.tv_sec += (time_t)seconds;
  until.tv_nsec += (long)((seconds - (double)(time_t)seconds) * 1e9);
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&w->lock);
  while (w->finished_count == 0 && w->failure == CURLM_OK && w->started &&
         w->attached + w->to_add_count > 0) {
    if (pthread_cond_timedwait(&w->changed, &w->lock, &until) == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&w->lock);
}

/*
** Takes the multi handle from the thread: returns with the lock held and the thread
** parked (or gone), so that the Lua thread may call libcurl on it until
** wf_worker_give_back.
*/
void wf_worker_borrow(wf_worker *w) {
  pthread_mutex_lock(&w->lock);
  if (!w->started || w->failure != CURLM_OK) return;
  w->borrow_wanted = 1;
  wake(w);
  while (!w->parked && w->failure == CURLM_OK) pthread_cond_wait(&w->changed, &w->lock);
}

/*
** While borrowed: forgets `easy` wherever the thread holds it. Returns 1 when it is
** in the multi handle (the caller takes it out), 0 when it is not (handed over and
** not added yet, or finished and not collected).
*/
int wf_worker_forget(wf_worker *w, CURL *easy) {
  size_t i;
  for (i = 0; i < w->to_add_count; i++) {
    if (w->to_add[i] == easy) {
      w->to_add[i] = w->to_add[--w->to_add_count];
      return 0;
    }
  }
  for (i = 0; i < w->finished_count; i++) {
    if (w->finished[i].easy == easy) {
      memmove(w->finished + i, w->finished + i + 1,
              (w->finished_count - i - 1) * sizeof *w->finished);
      w->finished_count--;
      return 0;
    }
  }
  if (w->attached > 0) w->attached--;
  return 1;
}

void wf_worker_give_back(wf_worker *w) {
  w->borrow_wanted = 0;
  pthread_cond_signal(&w->work);
  pthread_mutex_unlock(&w->lock);
}

/* Stops and joins the thread; the Lua thread owns every handle after. Idempotent. */
void wf_worker_stop(wf_worker *w) {
  if (!w->started) return;
  pthread_mutex_lock(&w->lock);
  w->stopping = 1;
  wake(w);
  pthread_mutex_unlock(&w->lock);
  pthread_join(w->thread, NULL);
  w->started = 0;
}

/* After wf_worker_stop. */
void wf_worker_free(wf_worker *w) {
  free(w->to_add);
  free(w->finished);
  w->to_add = NULL;
  w->finished = NULL;
  w->capacity = w->to_add_count = w->finished_count = 0;
  pthread_cond_destroy(&w->work);
  pthread_cond_destroy(&w->changed);
  pthread_mutex_destroy(&w->lock);
}
