/*
** Layer 2, the transfer thread: what worker.c offers transfer.c and session.c. It
** knows libcurl's handles and nothing of Lua, transfers or sessions.
*/
#ifndef WORKFLOWS_WORKER_H
#define WORKFLOWS_WORKER_H

#include <pthread.h>
#include <sys/types.h>
#include <curl/curl.h>

/* An easy handle the thread took out of the multi handle, and how its transfer ended. */
typedef struct wf_finished {
  CURL *easy;
  CURLcode code;
} wf_finished;

/*
** A thread that drives one multi handle: it adds the easy handles it is given,
** performs and polls, and takes each finished one out again, for the Lua thread to
** collect. While it runs, only it calls libcurl on that multi handle (or on an easy
** handle added to it); the Lua thread borrows the multi handle when it must take out
** a transfer that has not finished.
*/
typedef struct wf_worker {
  CURLM *multi;
  void (*ended_well)(CURL *easy);  /* called on the thread for each handle that ended well */
  pthread_t thread;
  int started;                   /* the thread exists (and must be joined) */
  pid_t pid;                     /* of the process that started it */
  pthread_mutex_t lock;          /* guards everything below */
  pthread_cond_t changed;        /* to the Lua thread: finished, parked or failed */
  pthread_cond_t work;           /* to the thread: resume, work to do, or stop */
  CURL **to_add;                 /* handed over, not added yet */
  size_t to_add_count;
  wf_finished *finished;         /* taken out, not collected yet */
  size_t finished_count;
  size_t capacity;               /* of both arrays: at least the handles it holds */
  size_t attached;               /* handles added to the multi handle, not taken out */
  int borrow_wanted, parked, stopping;
  int polling;                   /* the thread is in libcurl, not waiting on `work` */
  CURLMcode failure;             /* a libcurl failure that stopped the thread */
} wf_worker;

int wf_worker_init(wf_worker *w, CURLM *multi, void (*ended_well)(CURL *easy));
int wf_worker_start(wf_worker *w);
int wf_worker_foreign(const wf_worker *w);
int wf_worker_reserve(wf_worker *w, size_t handles);
void wf_worker_add(wf_worker *w, CURL *easy);
size_t wf_worker_take_finished(wf_worker *w, wf_finished *into, size_t room);
void wf_worker_wait(wf_worker *w, double seconds);
CURLMcode wf_worker_failure(wf_worker *w);
void wf_worker_borrow(wf_worker *w);
int wf_worker_forget(wf_worker *w, CURL *easy);
void wf_worker_give_back(wf_worker *w);
void wf_worker_stop(wf_worker *w);
void wf_worker_free(wf_worker *w);

#endif
