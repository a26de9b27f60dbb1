#include <pthread.h>
#include <stdio.h>
#include <unistd.h>
static void *f(void *a) { for (;;) pause(); return a; }
int main(void) { pthread_t t; pthread_create(&t, NULL, f, NULL); printf("ready\n"); fflush(stdout); for (;;) pause(); }
