// Package detect is the detection engine: rules over one roadmap as of a day
// that find duplicate funding, overlap, reconciliation gaps and procurement
// bottlenecks, and the flags that record what they found for review.
package detect
