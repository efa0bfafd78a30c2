// Package bench holds scoregate's load harness and the synthetic scoring
// backend it measures against.
//
// The backend answers the way an Azure Machine Learning inference server
// does: POST /score, GET / ("Healthy") and GET /swagger.json. It is also the
// backend that `scoregate serve --dev` starts when no --backend is given, so
// the development setup and the benchmarks exercise the same thing.
package bench
