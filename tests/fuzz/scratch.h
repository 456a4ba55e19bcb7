/*
 * scratch.h - a private scratch directory for a fuzz harness that needs
 * files (a mail root, a queue, an aliases file).  Made with mkdtemp()
 * under $TMPDIR (else /tmp), so parallel runs never share one, and
 * removed with everything in it when the fuzzer exits.  Included by the
 * harnesses after the program they include.
 */
static char scratch_dir[PATH_MAX];

/* rm -r: a directory's entries, then the directory (no symlinks followed). */
static void scratch_remove(const char *path)
{
	char sub[PATH_MAX];
	struct dirent *de;
	struct stat st;
	DIR *d;

	if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode) && (d = opendir(path))) {
		while ((de = readdir(d)))
			if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0) {
				snprintf(sub, sizeof sub, "%s/%s", path, de->d_name);
				scratch_remove(sub);
			}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

static void scratch_cleanup(void)
{
	if (scratch_dir[0])
		scratch_remove(scratch_dir);
}

/* Make the directory (once); returns the path of name inside it, in one
 * of a few rotating buffers (enough for the arguments of one call). */
static const char *scratch(const char *name)
{
	static char paths[8][PATH_MAX];
	static int next;
	const char *tmp = getenv("TMPDIR");
	char *p;

	if (!scratch_dir[0]) {
		snprintf(scratch_dir, sizeof scratch_dir, "%s/fuzz-smtpd.XXXXXX", tmp && *tmp ? tmp : "/tmp");
		if (!mkdtemp(scratch_dir)) {
			perror("fuzz: mkdtemp");
			exit(1);
		}
		atexit(scratch_cleanup);
	}
	p = paths[next++ % 8];
	snprintf(p, PATH_MAX, "%s/%s", scratch_dir, name);
	return p;
}
