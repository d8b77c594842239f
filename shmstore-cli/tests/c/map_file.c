/* Maps a file region the header `shmstore header PATH` was generated for (its path is
 * SHMSTORE_REGION_PATH), read-only with mmap, validates it with shmstore_from_base, reads the
 * value and says what it found.
 */
#include "region.h"

#include <stdio.h>

int main(void) {
    int fd = open(SHMSTORE_REGION_PATH, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        perror("open " SHMSTORE_REGION_PATH);
        return 1;
    }
    int owner = shmstore_check_owner_fd(fd);
    if (owner != 0) {
        fprintf(stderr, "shmstore_check_owner_fd: %s\n", shmstore_strerror(owner));
        return 1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        perror("fstat");
        return 1;
    }
    void *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    shmstore_region_t region;
    int rc = shmstore_from_base(base, (size_t)st.st_size, &region);
    if (rc != 0) {
        fprintf(stderr, "shmstore_from_base: %s\n", shmstore_strerror(rc));
        return 1;
    }
    shmstore_payload_t value;
    rc = shmstore_read(&region, &value);
    if (rc != 0) {
        fprintf(stderr, "shmstore_read: %s\n", shmstore_strerror(rc));
        return 1;
    }
    printf("value of %s at version %llu in %s\n", SHMSTORE_TYPE_NAME,
           (unsigned long long)shmstore_version(&region), SHMSTORE_REGION_LOCATION);
    shmstore_close(&region);
    munmap(base, (size_t)st.st_size);
    return 0;
}
